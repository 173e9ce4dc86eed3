//! Messages on the wire: MIME alternative parts, the fixed Message-ID, RFC
//! 8058's headers on marketing mail only, and a DKIM signature that a real
//! verifier (dkimpy, PyPI, installed by the test command) accepts with the
//! record Cohort says to publish, and rejects once a signed header changes;
//! the outbox folder writes each message once.

use std::process::Command;
use std::time::{Duration, SystemTime};

use cohort_mail::{
    build, DkimKey, Envelope, FolderDelivery, MessageBody, MessageError, OutboxFolder, Unsubscribe,
};

fn body() -> MessageBody {
    MessageBody {
        subject: "Ann, your cart is waiting — 10 % off".into(),
        html: "<!doctype html><html><body><p>Hi Ann</p><a href=\"https://cdp.example/t/c/x\">Back to your cart</a></body></html>".into(),
        text: "Hi Ann\n[Back to your cart][1]\n\n[1]: https://cdp.example/t/c/x\n".into(),
    }
}

fn envelope(unsubscribe: bool) -> Envelope {
    Envelope {
        from: "Blue Mugs <news@bluemugs.example>".into(),
        to: "Ann Smith <ann@example.com>".into(),
        return_path: Some("b+msg_42@bounces.bluemugs.example".into()),
        message_id: "msg_42@bluemugs.example".into(),
        unsubscribe: unsubscribe.then(|| Unsubscribe {
            https: "https://cdp.example/u/tok123".into(),
            mailto: "mailto:unsubscribe+tok123@bounces.bluemugs.example".into(),
        }),
        date: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_000_000),
    }
}

/// The value of header `name` (unfolded), or `None`.
fn header(message: &str, name: &str) -> Option<String> {
    let head = message.split("\r\n\r\n").next().unwrap_or("");
    let unfolded = head.replace("\r\n ", " ").replace("\r\n\t", " ");
    unfolded.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
    })
}

/// dkimpy's verdict on `message` with `record` as the only DNS answer.
fn dkimpy_verifies(message: &[u8], record: &str) -> Option<bool> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.eml");
    std::fs::write(&path, message).unwrap();
    let script = "import sys, dkim\n\
                  msg = open(sys.argv[1], 'rb').read()\n\
                  rec = sys.argv[2].encode()\n\
                  print(dkim.verify(msg, dnsfunc=lambda name, timeout=5: rec))\n";
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&path)
        .arg(record)
        .output()
        .ok()?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        if err.contains("No module named 'dkim'") {
            return None;
        }
        panic!("dkimpy failed: {err}");
    }
    Some(String::from_utf8_lossy(&out.stdout).trim() == "True")
}

#[test]
fn a_marketing_message_carries_one_click_unsubscribe_and_a_dkim_signature_a_verifier_accepts() {
    let key = DkimKey::generate("bluemugs.example", "cohort1").unwrap();
    assert_eq!(key.record_name(), "cohort1._domainkey.bluemugs.example");
    let record = key.record_value().unwrap();
    assert!(record.starts_with("v=DKIM1; k=rsa; p=MIIB"), "{record}");
    assert!(!format!("{key:?}").contains("PRIVATE KEY"));

    let wire = build(&envelope(true), &body(), Some(&key)).unwrap();
    assert_eq!(wire.mail_from, "b+msg_42@bounces.bluemugs.example");
    assert_eq!(wire.rcpt_to, "ann@example.com");
    let text = String::from_utf8(wire.bytes.clone()).unwrap();
    assert_eq!(
        header(&text, "Message-ID").as_deref(),
        Some("<msg_42@bluemugs.example>")
    );
    assert_eq!(
        header(&text, "List-Unsubscribe").as_deref(),
        Some(
            "<https://cdp.example/u/tok123>, <mailto:unsubscribe+tok123@bounces.bluemugs.example>"
        )
    );
    assert_eq!(
        header(&text, "List-Unsubscribe-Post").as_deref(),
        Some("List-Unsubscribe=One-Click")
    );
    assert!(header(&text, "Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    let plain = text.find("Content-Type: text/plain").expect("a text part");
    let html = text.find("Content-Type: text/html").expect("an HTML part");
    assert!(plain < html, "text first, HTML last (the preferred)");
    let signature = header(&text, "DKIM-Signature").expect("signed");
    assert!(signature.contains("d=bluemugs.example"), "{signature}");
    assert!(signature.contains("s=cohort1"), "{signature}");
    let signed: String = signature
        .split("h=")
        .nth(1)
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "from",
        "to",
        "subject",
        "message-id",
        "list-unsubscribe",
        "list-unsubscribe-post",
    ] {
        assert!(
            signed.split(':').any(|s| s.trim() == h),
            "{h} not signed: {signed}"
        );
    }

    let Some(verified) = dkimpy_verifies(&wire.bytes, &record) else {
        if std::env::var("COHORT_TEST_REQUIRE_CLIENTS").as_deref() == Ok("1") {
            panic!("COHORT_TEST_REQUIRE_CLIENTS=1 but python3 cannot import dkim (dkimpy, tests/clients/requirements.txt)");
        }
        cohort_testkit::skip(
            "DKIM verification by dkimpy",
            "python3 cannot import dkim (pip install -r tests/clients/requirements.txt)",
        );
        return;
    };
    assert!(verified, "dkimpy rejects the signature:\n{text}");
    // A changed unsubscribe address breaks it.
    let tampered = text.replace(
        "https://cdp.example/u/tok123",
        "https://evil.example/u/tok123",
    );
    assert_eq!(dkimpy_verifies(tampered.as_bytes(), &record), Some(false));
    // Another domain's key does not verify it.
    let other = DkimKey::generate("bluemugs.example", "cohort1").unwrap();
    assert_eq!(
        dkimpy_verifies(&wire.bytes, &other.record_value().unwrap()),
        Some(false)
    );
}

#[test]
fn transactional_mail_has_no_unsubscribe_headers_and_bad_addresses_are_named() {
    let wire = build(&envelope(false), &body(), None).unwrap();
    let text = String::from_utf8(wire.bytes).unwrap();
    assert_eq!(header(&text, "List-Unsubscribe"), None);
    assert_eq!(header(&text, "List-Unsubscribe-Post"), None);
    assert_eq!(header(&text, "DKIM-Signature"), None);

    for (mut e, field) in [
        (
            Envelope {
                to: "not an address".into(),
                ..envelope(true)
            },
            "to",
        ),
        (
            Envelope {
                from: "".into(),
                ..envelope(true)
            },
            "from",
        ),
        (
            Envelope {
                return_path: Some("@".into()),
                ..envelope(true)
            },
            "return_path",
        ),
        (
            Envelope {
                message_id: "<msg@x>".into(),
                ..envelope(true)
            },
            "message_id",
        ),
        (envelope(true), "unsubscribe"),
    ] {
        if field == "unsubscribe" {
            e.unsubscribe = Some(Unsubscribe {
                https: "https://a.example/u, <https://b.example>".into(),
                mailto: "mailto:u@a.example".into(),
            });
        }
        match build(&e, &body(), None) {
            Err(MessageError::Address { field: f, .. }) => assert_eq!(f, field),
            other => panic!("{field}: {other:?}"),
        }
    }
}

#[test]
fn the_outbox_folder_writes_each_message_once_and_whole() {
    let dir = tempfile::tempdir().unwrap();
    let folder = OutboxFolder::open(dir.path().join("outbox")).unwrap();
    let wire = build(&envelope(true), &body(), None).unwrap();
    let first = folder.deliver("msg_42@bluemugs.example", &wire).unwrap();
    let FolderDelivery::Written(path) = first else {
        panic!("{first:?}")
    };
    assert_eq!(path.file_name().unwrap(), "msg_42_bluemugs.example.eml");
    let again = folder.deliver("msg_42@bluemugs.example", &wire).unwrap();
    assert_eq!(again, FolderDelivery::AlreadyThere(path.clone()));
    let written = std::fs::read_to_string(&path).unwrap();
    assert!(written.starts_with(
        "Return-Path: <b+msg_42@bounces.bluemugs.example>\r\nDelivered-To: ann@example.com\r\n"
    ));
    assert!(written.ends_with(&String::from_utf8(wire.bytes).unwrap()));
    let files: Vec<_> = std::fs::read_dir(folder.dir()).unwrap().collect();
    assert_eq!(files.len(), 1, "no file left aside");
}
