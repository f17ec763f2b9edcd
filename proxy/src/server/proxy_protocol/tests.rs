use super::*;

/// A v2 header: signature, `version_command`, `family_transport`, and
/// `block` (addresses and TLVs) with its length.
fn v2(version_command: u8, family_transport: u8, block: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(version_command);
    header.push(family_transport);
    let length = u16::try_from(block.len()).unwrap();
    header.extend_from_slice(&length.to_be_bytes());
    header.extend_from_slice(block);
    header
}

/// A v2 PROXY TCP over IPv4 header from 192.0.2.1:56324 to
/// 198.51.100.7:443, with `tlvs` after the addresses.
fn v2_tcp4(tlvs: &[u8]) -> Vec<u8> {
    let mut block = vec![192, 0, 2, 1, 198, 51, 100, 7];
    block.extend_from_slice(&56324u16.to_be_bytes());
    block.extend_from_slice(&443u16.to_be_bytes());
    block.extend_from_slice(tlvs);
    v2(0x21, 0x11, &block)
}

/// A v2 PROXY TCP over IPv6 header from [2001:db8::1]:1234 to [::1]:80.
fn v2_tcp6() -> Vec<u8> {
    let source: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let mut block = source.octets().to_vec();
    block.extend_from_slice(&Ipv6Addr::LOCALHOST.octets());
    block.extend_from_slice(&1234u16.to_be_bytes());
    block.extend_from_slice(&80u16.to_be_bytes());
    v2(0x21, 0x21, &block)
}

fn client(text: &str) -> Source {
    Source::Client(text.parse().unwrap())
}

/// Feeds `header` to [`parse`] the way [`read`] does, one byte at a time
/// (the slowest sender): every prefix asks for more, never for a byte past
/// the header, and the whole header gives its source.
fn byte_by_byte(header: &[u8]) -> Result<Source, HeaderError> {
    for end in 0..header.len() {
        match parse(&header[..end])? {
            Parsed::More(wanted) => {
                assert!(wanted >= 1, "{end}: asks for nothing");
                assert!(
                    end + wanted <= header.len(),
                    "{end}: asks for {wanted}, past the header's {}",
                    header.len()
                );
            }
            Parsed::Done(source) => {
                panic!("done after {end} of {} bytes: {source:?}", header.len())
            }
        }
    }
    match parse(header)? {
        Parsed::Done(source) => Ok(source),
        Parsed::More(wanted) => panic!("the whole header still wants {wanted}"),
    }
}

/// Feeds `header` to [`parse`] in the largest reads it allows, as
/// [`read`] does when the whole header has arrived at once; returns the
/// source and how many reads it took.
fn greedy(header: &[u8]) -> (Source, usize) {
    let mut filled = 0;
    let mut reads = 0;
    loop {
        match parse(&header[..filled]).unwrap() {
            Parsed::Done(source) => {
                assert_eq!(filled, header.len());
                return (source, reads);
            }
            Parsed::More(wanted) => {
                assert!(filled + wanted <= header.len());
                filled += wanted;
                reads += 1;
            }
        }
    }
}

fn malformed(bytes: &[u8]) -> String {
    let error = parse(bytes)
        .err()
        .unwrap_or_else(|| panic!("{bytes:?} parsed"));
    assert!(error.is_malformed(), "{error}");
    error.to_string()
}

// === v1 ===

#[test]
fn v1_tcp4_gives_the_source() {
    let header = b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n";
    assert_eq!(byte_by_byte(header).unwrap(), client("192.0.2.1:56324"));
    let (source, reads) = greedy(header);
    assert_eq!(source, client("192.0.2.1:56324"));
    // 32 bytes at once, then at most two at a time.
    assert!(reads <= 2 + (header.len() - 32).div_ceil(2), "{reads}");
}

#[test]
fn v1_tcp6_gives_the_source() {
    let header = b"PROXY TCP6 2001:db8::1 ::1 1234 80\r\n";
    assert_eq!(byte_by_byte(header).unwrap(), client("[2001:db8::1]:1234"));
    assert_eq!(greedy(header).0, client("[2001:db8::1]:1234"));
}

#[test]
fn v1_shortest_headers() {
    for (header, source) in [
        (&b"PROXY UNKNOWN\r\n"[..], Source::Unknown),
        (b"PROXY TCP4 0.0.0.0 0.0.0.0 0 0\r\n", client("0.0.0.0:0")),
        (b"PROXY TCP6 :: :: 0 0\r\n", client("[::]:0")),
    ] {
        assert_eq!(byte_by_byte(header).unwrap(), source);
        // The shortest of any header, then the shortest of its kind.
        let (parsed, reads) = greedy(header);
        assert_eq!(parsed, source);
        assert!(reads <= 2, "{reads}");
    }
}

#[test]
fn v1_unknown_ignores_the_rest_of_its_line() {
    let header = b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n";
    assert_eq!(byte_by_byte(header).unwrap(), Source::Unknown);
}

#[test]
fn v1_longest_header_fits() {
    let header = b"PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n";
    assert_eq!(
        byte_by_byte(header).unwrap(),
        client("[ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff]:65535")
    );
    // The spec's worst case: UNKNOWN with those addresses, 107 bytes.
    let mut unknown = header.to_vec();
    unknown.splice(6..10, *b"UNKNOWN");
    assert_eq!(unknown.len(), V1_MAX);
    assert_eq!(byte_by_byte(&unknown).unwrap(), Source::Unknown);
}

#[test]
fn v1_over_long_is_refused_at_107_bytes() {
    let mut line = b"PROXY UNKNOWN ".to_vec();
    line.resize(V1_MAX, b'x');
    line.extend_from_slice(b"\r\n");
    assert_eq!(
        malformed(&line),
        "PROXY protocol v1 header longer than 107 bytes"
    );
    assert_eq!(
        malformed(&line[..V1_MAX]),
        "PROXY protocol v1 header longer than 107 bytes"
    );
    // The last byte it asks for is the 107th.
    assert_eq!(parse(&line[..V1_MAX - 1]).unwrap(), Parsed::More(1));
}

#[test]
fn v1_malformed_lines() {
    for (line, why) in [
        (
            &b"PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n"[..],
            "protocol not TCP4, TCP6 or UNKNOWN",
        ),
        (
            b"PROXY tcp4 192.0.2.1 198.51.100.7 1 2\r\n",
            "protocol not TCP4, TCP6 or UNKNOWN",
        ),
        (
            b"PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",
            "address not of the protocol's family",
        ),
        (
            b"PROXY TCP6 192.0.2.1 ::1 1 2\r\n",
            "address not of the protocol's family",
        ),
        (
            b"PROXY TCP4 192.0.2.01 198.51.100.7 1 2\r\n",
            "address not of the protocol's family",
        ),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1\r\n", "missing port"),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 3\r\n",
            "more than four fields after the protocol",
        ),
        (
            b"PROXY TCP4 192.0.2.1  198.51.100.7 1 2\r\n",
            "address not of the protocol's family",
        ),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 65536 2\r\n",
            "port over 65535",
        ),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 +1 2\r\n",
            "port not a decimal number",
        ),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2 \r\n",
            "more than four fields after the protocol",
        ),
        (b"PROXY TCP4 192.0.2.1 198.51.100.7 1 \xff\r\n", "not ASCII"),
        (
            b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
            "the line does not end with CRLF",
        ),
    ] {
        assert_eq!(
            malformed(line),
            format!("malformed PROXY protocol v1 header: {why}"),
            "{}",
            String::from_utf8_lossy(line)
        );
    }
}

#[test]
fn v1_bytes_past_the_crlf_are_not_the_header() {
    assert_eq!(
        malformed(b"PROXY UNKNOWN\r\nGET"),
        "malformed PROXY protocol v1 header: the line does not end with CRLF"
    );
}

// === v2 ===

#[test]
fn v2_tcp4_gives_the_source() {
    let header = v2_tcp4(&[]);
    assert_eq!(byte_by_byte(&header).unwrap(), client("192.0.2.1:56324"));
    // The shortest header of either version, the rest of the fixed part,
    // then the addresses.
    assert_eq!(greedy(&header), (client("192.0.2.1:56324"), 3));
}

#[test]
fn v2_tcp6_gives_the_source() {
    let header = v2_tcp6();
    assert_eq!(byte_by_byte(&header).unwrap(), client("[2001:db8::1]:1234"));
    assert_eq!(greedy(&header), (client("[2001:db8::1]:1234"), 3));
}

#[test]
fn v2_tlvs_are_skipped() {
    // PP2_TYPE_AUTHORITY "example.com", then a PP2_TYPE_NOOP of 3 bytes.
    let mut tlvs = vec![0x02, 0x00, 11];
    tlvs.extend_from_slice(b"example.com");
    tlvs.extend_from_slice(&[0x04, 0x00, 0x03, 0, 0, 0]);
    let header = v2_tcp4(&tlvs);
    assert_eq!(byte_by_byte(&header).unwrap(), client("192.0.2.1:56324"));
}

#[test]
fn v2_local_uses_the_peer() {
    assert_eq!(byte_by_byte(&v2(0x20, 0x00, &[])).unwrap(), Source::Unknown);
    // LOCAL with addresses (some balancers send them): ignored.
    let mut with_addresses = v2_tcp4(&[]);
    with_addresses[12] = 0x20;
    assert_eq!(byte_by_byte(&with_addresses).unwrap(), Source::Unknown);
}

#[test]
fn v2_without_an_ip_address_uses_the_peer() {
    assert_eq!(byte_by_byte(&v2(0x21, 0x00, &[])).unwrap(), Source::Unknown);
    assert_eq!(
        byte_by_byte(&v2(0x21, 0x31, &[0; 216])).unwrap(),
        Source::Unknown
    );
}

#[test]
fn v2_longest_header_fits_and_longer_is_refused() {
    let longest = v2(0x21, 0x31, &[0; MAX_HEADER - V2_FIXED]);
    assert_eq!(byte_by_byte(&longest).unwrap(), Source::Unknown);
    let longer = v2(0x21, 0x31, &[0; MAX_HEADER - V2_FIXED + 1]);
    // Refused from its fixed part, before the rest is read.
    assert_eq!(
        malformed(&longer[..V2_FIXED]),
        "PROXY protocol v2 header of 537 bytes, more than the 536 accepted"
    );
    let mut largest = v2(0x21, 0x11, &[]);
    largest[14..16].copy_from_slice(&[0xff, 0xff]);
    assert!(malformed(&largest).contains("65551 bytes"));
}

#[test]
fn v2_malformed_headers() {
    let mut version_1 = v2_tcp4(&[]);
    version_1[12] = 0x11;
    let mut command = v2_tcp4(&[]);
    command[12] = 0x22;
    let mut dgram = v2_tcp4(&[]);
    dgram[13] = 0x12;
    let mut family = v2_tcp4(&[]);
    family[13] = 0x41;
    for (header, why) in [
        (version_1, "version not 2"),
        (command, "command neither LOCAL nor PROXY"),
        (dgram, "transport not STREAM"),
        (family, "address family unknown"),
        (
            v2(0x21, 0x11, &[192, 0, 2, 1, 198, 51, 100, 7, 0, 1, 0]),
            "address block too short for INET",
        ),
        (
            v2(0x21, 0x21, &[0; 35]),
            "address block too short for INET6",
        ),
    ] {
        assert_eq!(
            malformed(&header),
            format!("malformed PROXY protocol v2 header: {why}")
        );
    }
    let mut past = v2_tcp4(&[]);
    past.push(b'G');
    assert_eq!(
        malformed(&past),
        "malformed PROXY protocol v2 header: bytes past the header's length"
    );
}

// === neither ===

#[test]
fn plain_http_is_refused_from_its_first_byte() {
    for start in [
        &b"G"[..],
        b"GET / HTTP/1.1\r\n",
        b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    ] {
        assert_eq!(
            malformed(start),
            "no PROXY protocol header: the connection starts with neither `PROXY ` nor the v2 signature"
        );
    }
    // `PROXY` in another case, or the v2 signature gone wrong midway.
    malformed(b"proxy ");
    malformed(b"\r\n\r\n\0\r\nQUIT\r");
    malformed(b"PROXY\t");
}

#[test]
fn the_first_read_is_the_shortest_header() {
    assert_eq!(parse(b"").unwrap(), Parsed::More(V1_MIN));
    assert_eq!(parse(b"PROXY").unwrap(), Parsed::More(V1_MIN - 5));
    assert_eq!(parse(b"\r\n\r\n").unwrap(), Parsed::More(V1_MIN - 4));
    assert_eq!(parse(&V2_SIGNATURE[..]).unwrap(), Parsed::More(3));
    // From the 15th byte of a v2 header, the rest of its fixed part.
    assert_eq!(parse(&v2_tcp4(&[])[..15]).unwrap(), Parsed::More(1));
}

#[test]
fn arbitrary_bytes_never_panic_and_never_ask_past_the_bound() {
    use rand::{Rng, SeedableRng};
    // Seeded: the same bytes on every run.
    let mut random = rand::rngs::SmallRng::seed_from_u64(0x9e37_79b9_7f4a_7c15);
    let starts: [&[u8]; 3] = [b"PROXY ", b"PROXY TCP4 ", &V2_SIGNATURE[..]];
    for round in 0..20_000 {
        let mut bytes = starts[round % 3].to_vec();
        // Mostly the characters of real headers, so that deep paths run.
        let alphabet = b"0123456789.: TCP46UNKOWN\r\n\x21\x11\x00\x0c";
        let extra = random.random_range(0..120);
        bytes.extend((0..extra).map(|_| alphabet[random.random_range(0..alphabet.len())]));
        if let Ok(Parsed::More(wanted)) = parse(&bytes) {
            assert!(
                bytes.len() + wanted <= MAX_HEADER,
                "round {round}: {bytes:?}"
            );
        }
    }
}

// === read ===

#[tokio::test]
async fn read_takes_the_header_and_leaves_the_request() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    for header in [
        b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 443\r\n".to_vec(),
        v2_tcp4(&[0x04, 0x00, 0x01, 0]),
    ] {
        let mut sent = header.clone();
        sent.extend_from_slice(b"GET / HTTP/1.1\r\n\r\n");
        let sender = tokio::spawn(async move {
            let mut stream = TcpStream::connect(addr).await.unwrap();
            // Byte by byte: the slowest sender the reader must follow.
            for byte in sent {
                stream.write_all(&[byte]).await.unwrap();
                stream.flush().await.unwrap();
            }
            stream
        });
        let (mut stream, _) = listener.accept().await.unwrap();
        let source = read(&mut stream, Duration::from_secs(10)).await.unwrap();
        assert_eq!(source, client("192.0.2.1:56324"));
        let _sender = sender.await.unwrap();
        let mut rest = [0u8; 18];
        stream.read_exact(&mut rest).await.unwrap();
        assert_eq!(&rest, b"GET / HTTP/1.1\r\n\r\n");
    }
}

#[tokio::test]
async fn read_ends_on_close_and_on_time() {
    use tokio::io::AsyncWriteExt;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut sender = TcpStream::connect(addr).await.unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    sender.write_all(b"PROXY TCP4 192.0.2.1").await.unwrap();
    let error = read(&mut stream, Duration::from_millis(50))
        .await
        .unwrap_err();
    assert!(matches!(error, HeaderError::TimedOut(_)), "{error}");
    assert!(!error.is_malformed());

    let mut sender = TcpStream::connect(addr).await.unwrap();
    let (mut stream, _) = listener.accept().await.unwrap();
    sender.write_all(b"PROXY TCP4 192.0.2.1").await.unwrap();
    drop(sender);
    let error = read(&mut stream, Duration::from_secs(10))
        .await
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "connection closed after 20 bytes, before a whole PROXY protocol header"
    );
}
