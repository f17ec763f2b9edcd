//! A lookup allocates nothing: `point_of`, `primary`, `preference_list` and
//! walking the list only read the ring's arrays. A counting global allocator
//! checks it over 10,000 lookups.
//!
//! The allocator is the one place in the workspace that needs `unsafe`: a
//! `GlobalAlloc` impl is an `unsafe impl`. It only forwards to `System`.

// Needs `unsafe_code` to be `deny` rather than `forbid` for this crate's
// tests (see ring/Cargo.toml); the library keeps `#![forbid(unsafe_code)]`.
#![allow(unsafe_code)]
// Every item here is test code: this lets clippy's `allow-unwrap-in-tests`
// cover the helpers too, not just the `#[test]` functions.
#![cfg(test)]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use shardproxy_ring::records::derived_tokens;
use shardproxy_ring::{InstanceName, Member, Redundancy, Replication, Ring, Token};

/// Counts allocations made by the current thread, so that the test harness's
/// own threads cannot disturb the count.
struct CountingAllocator;

thread_local! {
    // `const` and `Cell<usize>`: no lazy initialisation and no destructor, so
    // touching it from inside the allocator cannot allocate or recurse.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
}

fn count() {
    // `try_with`: during thread teardown the slot may be gone; not counting
    // then is fine, no measurement is running.
    let _ = ALLOCATIONS.try_with(|n| n.set(n.get() + 1));
}

// SAFETY: every method forwards its arguments unchanged to `System`, which
// upholds the `GlobalAlloc` contract; counting touches only a thread-local
// `Cell` and never allocates.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's guarantees about `layout` are passed on.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: as for `alloc`.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: `ptr` came from this allocator, that is from `System`.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from this allocator, that is from `System`.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: CountingAllocator = CountingAllocator;

/// Allocations made by this thread while `work` runs.
fn allocations_during(work: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    work();
    ALLOCATIONS.with(Cell::get) - before
}

fn ring(instances: u16, virtual_nodes: u32, replication: Replication) -> Ring {
    let members = (0..instances)
        .map(|i| {
            // Two instances per host, so redundancy=host has work to do.
            let name = InstanceName::new(&format!("node{}.example", i / 2), 7000 + i % 2)
                .expect("valid host");
            Member {
                tokens: derived_tokens(&name, virtual_nodes),
                addr: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), name.port()),
                name,
            }
        })
        .collect();
    Ring::build(members, replication).expect("fits")
}

#[test]
fn the_counter_counts() {
    let n = allocations_during(|| {
        black_box(Vec::<u8>::with_capacity(black_box(16)));
    });
    assert_eq!(n, 1);
}

#[test]
fn lookups_do_not_allocate() {
    let rings = [
        ring(100, 64, Replication::default()),
        ring(
            100,
            64,
            Replication {
                slaves: 2,
                redundancy: Redundancy::Host,
            },
        ),
        ring(
            3,
            1,
            Replication {
                slaves: 5,
                redundancy: Redundancy::None,
            },
        ),
    ];
    let keys: Vec<String> = (0..10_000).map(|i| format!("/users/{i}")).collect();
    let positions: Vec<Token> = keys
        .iter()
        .map(|key| Token::of_key(key.as_bytes()))
        .collect();

    for ring in &rings {
        let mut checksum = 0u64;
        let n = allocations_during(|| {
            for (key, &position) in keys.iter().zip(&positions) {
                checksum += black_box(ring.point_of(black_box(position))).unwrap_or(0) as u64;
                checksum += ring
                    .primary(position)
                    .map_or(0, |i| u64::from(i.name().port()));
                let list = ring.preference_list(Token::of_key(black_box(key).as_bytes()));
                for instance in list.iter() {
                    checksum += u64::from(instance.addr().port());
                    checksum += instance.name().host().len() as u64;
                }
                checksum += list.get(1).map_or(0, |i| u64::from(i.points()));
            }
        });
        assert_eq!(n, 0, "{n} allocations in 10,000 lookups");
        assert!(black_box(checksum) > 0);
    }
}
