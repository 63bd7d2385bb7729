// SPDX-License-Identifier: MPL-2.0
//! Unit tests of `uri.rs`.

use super::*;

fn addr(host: &str, port: u16) -> Target {
    Target::Address {
        host: host.into(),
        port,
    }
}

#[test]
fn host_and_port_are_read_with_the_default_port_when_none() {
    assert_eq!(
        parse("videoip://192.0.2.7:6000").unwrap().target,
        addr("192.0.2.7", 6000)
    );
    assert_eq!(
        parse("videoip://camera.local").unwrap().target,
        addr("camera.local", DEFAULT_PORT)
    );
    assert_eq!(
        parse("VIDEOIP://239.1.2.3:5004/").unwrap().target,
        addr("239.1.2.3", 5004)
    );
    assert_eq!(
        parse("videoip://[ff02::1]:5006").unwrap().target,
        addr("ff02::1", 5006)
    );
    assert_eq!(parse("videoip://[::]").unwrap().target, addr("::", 5004));
}

#[test]
fn the_query_sets_properties_in_order_decoded() {
    let u = parse("videoip://0.0.0.0:5004?latency=100&multicast-iface=eth%200&reuse").unwrap();
    assert_eq!(
        u.params,
        vec![
            ("latency".into(), "100".into()),
            ("multicast-iface".into(), "eth 0".into()),
            ("reuse".into(), "".into()),
        ]
    );
}

#[test]
fn three_slashes_name_a_source() {
    let u = parse("videoip:///CAM%201?latency=80").unwrap();
    assert_eq!(u.target, Target::Name("CAM 1".into()));
    assert_eq!(u.params, vec![("latency".into(), "80".into())]);
    assert_eq!(name_uri("CAM 1/é"), "videoip:///CAM%201%2F%C3%A9");
    assert_eq!(
        parse(&name_uri("CAM 1/é")).unwrap().target,
        Target::Name("CAM 1/é".into())
    );
}

#[test]
fn address_uris_round_trip() {
    for (host, port) in [("127.0.0.1", 5004), ("::1", 7000), ("my-host", 1)] {
        let u = address_uri(host, port);
        assert_eq!(parse(&u).unwrap().target, addr(host, port), "{u}");
    }
}

#[test]
fn malformed_uris_are_refused_with_a_reason() {
    for bad in [
        "udp://127.0.0.1:5004",
        "videoip:127.0.0.1",
        "videoip://",
        "videoip:///",
        "videoip://:x",
        "videoip://:5004/path",
        "videoip://host:99999",
        "videoip://host:port",
        "videoip://::1:5004",
        "videoip://[::1",
        "videoip://[::1]x",
        "videoip://host/path",
        "videoip://user@host",
        "videoip:///%zz",
        "videoip://host?=1",
        "videoip:///%ff%fe",
    ] {
        let e = parse(bad).expect_err(bad);
        assert!(e.0.contains("not a videoip URI"), "{e}");
    }
}

#[test]
fn a_receiver_listens_without_a_host_joins_a_group_and_subscribes_to_a_sender() {
    assert_eq!(parse("videoip://:6000").unwrap().target, addr("", 6000));
    assert_eq!(receiver_role(""), Role::Listen);
    assert_eq!(receiver_role("0.0.0.0"), Role::Listen);
    assert_eq!(receiver_role("::"), Role::Listen);
    assert_eq!(
        receiver_role("239.1.2.3"),
        Role::Join("239.1.2.3".parse().unwrap())
    );
    assert_eq!(
        receiver_role("ff02::1"),
        Role::Join("ff02::1".parse().unwrap())
    );
    assert_eq!(
        receiver_role("192.0.2.7"),
        Role::Subscribe("192.0.2.7".into())
    );
    assert_eq!(
        receiver_role("camera.local"),
        Role::Subscribe("camera.local".into())
    );
    assert_eq!(address_uri("", 5004), "videoip://:5004");
}
