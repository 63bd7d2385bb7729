// SPDX-License-Identifier: MPL-2.0
use super::*;

/// RFC 6762 §11: sent to the group, on-link from anywhere; sent to us alone, only from a
/// local subnet or an IPv6 link-local address.
#[test]
fn test_on_link_is_the_group_or_a_local_subnet() {
    let ip = |s: &str| s.parse::<IpAddr>().unwrap();
    let subnets = [
        (ip("10.60.0.2"), ip("255.255.255.0")),
        (ip("127.0.0.1"), ip("255.0.0.0")),
        (ip("fd00::2"), ip("ffff:ffff:ffff:ffff::")),
    ];
    let group = Some(ip("224.0.0.251"));
    let us = Some(ip("10.60.0.2"));
    assert!(on_link(ip("192.0.2.1"), group, &subnets), "to the group");
    assert!(
        on_link(ip("192.0.2.1"), None, &subnets),
        "destination not known"
    );
    assert!(on_link(ip("fe80::1"), Some(ip("ff02::fb")), &subnets));
    assert!(on_link(ip("10.60.0.77"), us, &subnets));
    assert!(on_link(ip("127.0.0.5"), us, &subnets));
    assert!(
        !on_link(ip("10.50.0.1"), us, &subnets),
        "unicast from off the subnets"
    );
    assert!(!on_link(ip("10.61.0.1"), us, &subnets));
    assert!(
        on_link(ip("fe80::1"), Some(ip("fe80::2")), &subnets),
        "link-local"
    );
    assert!(on_link(ip("fd00::9"), Some(ip("fd00::2")), &subnets));
    assert!(!on_link(ip("fd01::9"), Some(ip("fd00::2")), &subnets));
    assert!(
        !on_link(ip("::ffff:10.60.0.9"), us, &subnets),
        "families do not mix"
    );
}
