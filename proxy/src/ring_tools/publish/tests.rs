use super::*;

const OLD: &str = "$ORIGIN example.com.\n$TTL 60\n\
    _frob._http IN SRV 10 50 8081 frob1\n\
    tokens.8081.frob1 IN TXT \"40\"\n\
    frob1 IN A 10.0.0.1\n\
    frob2 IN A 10.0.0.2\n";

fn input<'a>(label: &'a str, text: &'a str) -> ZoneInput<'a> {
    ZoneInput { label, text }
}

fn prepared(old: &str, new: &str) -> Result<Prepared, PublishError> {
    prepare(
        "_frob._http.example.com",
        input("old.zone", old),
        input("new.zone", new),
    )
}

#[test]
fn the_report_lists_what_is_deleted_and_added() {
    let new = OLD.replace("\"40\"", "\"40 c0\"")
        + "_frob._http IN SRV 10 50 8081 frob2\ntokens.8081.frob2 IN TXT \"80\"\n";
    let prepared = prepared(OLD, &new).unwrap();
    let report = applied_report(&prepared, "example.com.", ("old.zone", "new.zone"));
    assert_eq!(
        report,
        "; ring publish of _frob._http.example.com. to zone example.com.: new.zone is published instead of old.zone\n\
         ; deleted 1 record:\n\
         tokens.8081.frob1.example.com. 60 IN TXT \"40\"\n\
         ; added 3 records:\n\
         _frob._http.example.com. 60 IN SRV 10 50 8081 frob2.example.com.\n\
         tokens.8081.frob1.example.com. 60 IN TXT \"40 c0\"\n\
         tokens.8081.frob2.example.com. 60 IN TXT \"80\"\n\
         ; the ring published now: 2 instances, 3 tokens, slaves=0 redundancy=none, fingerprint ".to_owned()
            + prepared.new_ring.rsplit(' ').next().unwrap()
            + "\n"
    );

    let same = self::prepared(OLD, OLD).unwrap();
    let report = applied_report(&same, "example.com.", ("a", "b"));
    assert!(
        report.contains(
            "; nothing to change: the server publishes the ring records of a, and b has the same\n"
        ),
        "{report}"
    );
}

#[test]
fn file_errors_name_the_file() {
    let error = prepared("_x IN SRV 1", OLD).unwrap_err();
    assert!(
        error.to_string().starts_with("old.zone: line 1: "),
        "{error}"
    );
    assert_eq!(error.exit_code(), 1);

    // NEW must publish a ring proxies would take: here a target without
    // an address.
    let new = format!("{OLD}_frob._http IN SRV 10 50 8081 frob9\n");
    let error = prepared(OLD, &new).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("new.zone: line 7: SRV target frob9.example.com."),
        "{error}"
    );

    // Nor one without tokens.
    let error = prepared(OLD, &OLD.replace("tokens.8081.frob1 IN TXT \"40\"\n", "")).unwrap_err();
    assert_eq!(
        error.to_string(),
        "new.zone: no instance of _frob._http.example.com. has tokens: proxies would have no ring \
         to route with (`shardproxy check` fails on it); publish tokens with the instances"
    );

    // OLD need not publish a ring: a first publish.
    let first = prepared("$ORIGIN example.com.\nfrob1 1 IN A 10.0.0.1\n", OLD).unwrap();
    assert_eq!(first.update.adds.len(), 2);

    let no_ttl = "_frob._http.example.com. IN SRV 10 50 8081 frob1.example.com.\n\
                  tokens.8081.frob1.example.com. 1 IN TXT \"1\"\n\
                  frob1.example.com. 1 IN A 10.0.0.1\n";
    let error = prepared(OLD, no_ttl).unwrap_err();
    assert!(
        error
            .to_string()
            .starts_with("new.zone: line 1: _frob._http.example.com. has no TTL"),
        "{error}"
    );
}

#[test]
fn key_file_errors_name_the_file() {
    let dir = std::env::temp_dir().join(format!("shardproxy-publish-key-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("bad.key");
    std::fs::write(
        &path,
        "key \"k\" {\n algorithm hmac-sha1;\n secret \"YQ==\";\n};\n",
    )
    .unwrap();
    let error = read_key(&path).unwrap_err().to_string();
    assert_eq!(
        error,
        format!(
            "--tsig-key {}: line 2: algorithm \"hmac-sha1\" is not supported: use hmac-sha256, hmac-sha384, hmac-sha512",
            path.display()
        )
    );
    let missing = dir.join("missing.key");
    let error = read_key(&missing).unwrap_err().to_string();
    assert!(
        error.starts_with(&format!("--tsig-key {}: ", missing.display())),
        "{error}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn server_addresses() {
    assert_eq!(
        parse_server("192.0.2.1").unwrap(),
        "192.0.2.1:53".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_server("192.0.2.1:5353").unwrap(),
        "192.0.2.1:5353".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_server("::1").unwrap(),
        "[::1]:53".parse::<SocketAddr>().unwrap()
    );
    assert_eq!(
        parse_server("[::1]:5353").unwrap(),
        "[::1]:5353".parse::<SocketAddr>().unwrap()
    );
    let error = parse_server("ns1.example.com").unwrap_err();
    assert!(error.contains("is not IP or IP:PORT"), "{error}");
}

#[test]
fn only_failed_prerequisites_exit_3() {
    let server: SocketAddr = "127.0.0.1:53".parse().unwrap();
    for rcode in [
        ResponseCode::NXRRSet,
        ResponseCode::YXRRSet,
        ResponseCode::NXDomain,
        ResponseCode::YXDomain,
    ] {
        assert!(prerequisite_failure(rcode).is_some(), "{rcode:?}");
    }
    for rcode in [
        ResponseCode::NoError,
        ResponseCode::Refused,
        ResponseCode::NotAuth,
        ResponseCode::ServFail,
        ResponseCode::NotZone,
    ] {
        assert!(prerequisite_failure(rcode).is_none(), "{rcode:?}");
    }
    let no_longer_old = PublishError::NoLongerOld {
        server,
        zone: "example.com.".to_owned(),
        service: "_frob._http.example.com.".to_owned(),
        rcode: rcode_name(ResponseCode::NXRRSet),
        meaning: "an RRset of OLD is no longer as in OLD",
    };
    assert_eq!(no_longer_old.exit_code(), 3);
    assert_eq!(
        no_longer_old.to_string(),
        "127.0.0.1:53 refused the update with NXRRSET (an RRset of OLD is no longer as in OLD): \
         the ring of _frob._http.example.com. published in zone example.com. is no longer the one \
         in OLD; nothing changed. Read what is published now, plan from it and publish again"
    );
    let refused = PublishError::Refused {
        server,
        zone: "example.com.".to_owned(),
        rcode: rcode_name(ResponseCode::Refused),
        meaning: refusal_meaning(ResponseCode::Refused, "example.com.", None),
    };
    assert_eq!(refused.exit_code(), 1);
    assert!(refused.to_string().contains("give --tsig-key"), "{refused}");
}

/// A server that answers the SOA query and then takes the update without
/// ever answering: the update may or may not have been applied, and the
/// message says so (exit 1, not 3). On paused time, the 5 s pass at once.
#[tokio::test(start_paused = true)]
async fn an_unanswered_update_may_have_been_applied() {
    use hickory_proto::op::Message;
    use hickory_proto::rr::rdata::SOA;
    use hickory_proto::rr::{Name, RData, Record};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn read_message(stream: &mut tokio::net::TcpStream) -> Message {
        let mut length = [0u8; 2];
        stream.read_exact(&mut length).await.unwrap();
        let mut bytes = vec![0u8; usize::from(u16::from_be_bytes(length))];
        stream.read_exact(&mut bytes).await.unwrap();
        Message::from_vec(&bytes).unwrap()
    }

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let (mut stream, _) = listener.accept().await.unwrap();
        let query = read_message(&mut stream).await;
        let zone = Name::from_ascii("example.com.").unwrap();
        let mut answer = query.into_response();
        answer.metadata.authoritative = true;
        answer.add_authority(Record::from_rdata(
            zone.clone(),
            1,
            RData::SOA(SOA::new(zone.clone(), zone, 1, 1, 1, 1, 1)),
        ));
        let bytes = answer.to_vec().unwrap();
        let length = u16::try_from(bytes.len()).unwrap().to_be_bytes();
        stream.write_all(&length).await.unwrap();
        stream.write_all(&bytes).await.unwrap();
        let update = read_message(&mut stream).await;
        assert_eq!(update.metadata.op_code, hickory_proto::op::OpCode::Update);
        // Holds the connection open, answering nothing.
        stream
    });
    let prepared = prepared(OLD, OLD).unwrap();
    let error = publish(server, &prepared.update, None).await.unwrap_err();
    assert_eq!(error.exit_code(), 1);
    assert_eq!(
        error.to_string(),
        format!(
            "{server}: the update was sent to zone example.com. but no answer within 5s: it may \
             or may not have been applied; compare what the server publishes (`shardproxy \
             check`, `ring show`) with NEW"
        )
    );
    drop(silent.await.unwrap());
}
