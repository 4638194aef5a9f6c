//! The storage conformance suite ([`reg_core::storage::conformance`]) on
//! the object stores the tests can reach: moto's S3 and Azurite's Azure
//! Blob (the unit tests run it on the filesystem and `InMemory`). Then what
//! only a server shows, the same on both: a batch delete whose answer fails
//! key by key gives one error per key; a refused credential is a
//! permission failure; a store that keeps throttling is a transient one.

use reg_core::error::Failure;
use reg_core::storage::{conformance, Backend};
use reg_tests::azurite::{self, Azurite};
use reg_tests::proxy::{Fault, Kind, Proxy};
use reg_tests::{moto, Moto, S3Storage};

fn s3(endpoint: &str) -> S3Storage {
    S3Storage {
        endpoint: endpoint.into(),
        bucket: "conformance".into(),
        root: "srv/registry".into(),
    }
}

/// What a server shows: per-key batch failures, a transient failure.
fn server_faults(b: &dyn Backend, key_errors: &dyn Backend, throttled: &dyn Backend, at: &str) {
    assert!(b.write_new("blobs/sha256/cc/cc03/data", b"x").unwrap());
    assert!(b.write_new("blobs/sha256/cc/cc04/data", b"y").unwrap());
    let keys = [
        "blobs/sha256/cc/cc03/data".to_string(),
        "blobs/sha256/cc/cc04/data".to_string(),
    ];
    let r = key_errors.delete_batch(&keys);
    assert_eq!(r.len(), 2, "{at}");
    for (k, x) in keys.iter().zip(&r) {
        let e = x.as_ref().expect_err(k);
        assert!(
            e.to_string().contains("not deleted: ") && e.to_string().contains(k.as_str()),
            "{at}: {e}"
        );
    }
    b.refresh();
    assert!(b.stat(&keys[0]).unwrap().is_some(), "{at}: deleted after all");
    let e = throttled.read("blobs/sha256/cc/cc03/data", 10).unwrap_err();
    assert_eq!(e.failure(), Failure::Transient, "{at}: {e}");
}

#[test]
fn s3_moto_conforms() {
    let name = "s3_moto_conforms";
    if !reg_tests::s3_programs_available(name) {
        return;
    }
    let m = Moto::start().unwrap();
    m.create_bucket("conformance").unwrap();
    let b = moto::backend(&s3(&m.endpoint()), &m.endpoint()).unwrap();
    conformance::run(&b);
    let errors = Proxy::start(m.port(), |k, _| match k {
        Kind::DeleteObjects => Fault::KeyErrors,
        _ => Fault::Forward,
    })
    .unwrap();
    let slow = Proxy::start(m.port(), |_, _| Fault::SlowDown).unwrap();
    server_faults(
        &b,
        &moto::backend(&s3(&m.endpoint()), &errors.endpoint()).unwrap(),
        &moto::backend(&s3(&m.endpoint()), &slow.endpoint()).unwrap(),
        name,
    );
}

#[test]
fn azure_azurite_conforms() {
    let name = "azure_azurite_conforms";
    if !reg_tests::azure_programs_available(name, false) {
        return;
    }
    let a = Azurite::start().unwrap();
    a.create_container("conformance").unwrap();
    let b = azurite::backend(&a.endpoint(), "conformance", "srv/registry").unwrap();
    conformance::run(&b);
    let errors = Proxy::start(a.port(), |k, _| match k {
        Kind::DeleteObjects => Fault::KeyErrors,
        _ => Fault::Forward,
    })
    .unwrap();
    let slow = Proxy::start(a.port(), |_, _| Fault::SlowDown).unwrap();
    let through =
        |p: &Proxy| azurite::backend(&azurite::endpoint_at(p.port()), "conformance", "srv/registry");
    server_faults(&b, &through(&errors).unwrap(), &through(&slow).unwrap(), name);
    // A key Azurite does not know: refused, as a permission failure.
    let mut wrong = azurite::config(&a.endpoint(), "conformance", "srv/registry");
    wrong.access_key = Some(reg_tests::objects::base64_encode(b"not the account key"));
    let b = reg_core::object::ObjectBackend::connect(std::sync::Arc::new(wrong)).unwrap();
    let e = b.read("blobs/sha256/cc/cc03/data", 10).unwrap_err();
    assert_eq!(e.failure(), Failure::Permission, "{name}: {e}");
}
