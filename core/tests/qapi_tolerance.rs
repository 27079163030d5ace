//! The generated vocabulary (`qmp_core::qapi`) decodes what a newer QEMU sends: members
//! the schema does not know are skipped, enum values and union variants it does not know
//! decode to an `Unknown` variant carrying the text (and, for unions, the whole object),
//! and events do the same. What an older QEMU (7.2) omits because it was added later is
//! optional in the generated types (schema history), so its replies decode too. What the
//! schema requires is still required.

use qmp_core::commands::Command;
use qmp_core::events::EventData;
use qmp_core::json::{DecodeError, RawJson};
use qmp_core::qapi::{
    BlockJobInfoBranch, CpuInfoFastBranch, DirtyRateStatus, JobStatus, JobStatusChangeEvent,
    JobType, QueryBlockJobs, QueryCpusFast, QueryDirtyRate, QuerySev, QueryStatus, RunState,
    SevGuestType, SevInfoBranch,
};

fn raw(json: &str) -> RawJson<'_> {
    RawJson::parse(json.as_bytes()).unwrap()
}

fn encode<T: serde::Serialize>(value: &T) -> String {
    let mut out = [0u8; 1024];
    let n = qmp_core::encode::to_slice(value, &mut out).unwrap();
    String::from_utf8(out[..n].to_vec()).unwrap()
}

#[test]
fn unknown_members_are_skipped() {
    let reply = raw(
        r#"{"status": "running", "singlestep": false, "running": true,
            "added-in-qemu-99": {"nested": [1, 2, {"deep": null}]}, "another": "x"}"#,
    );
    let status = QueryStatus::decode_response(reply).unwrap();
    assert_eq!(status.status, RunState::Running);
    assert!(status.running);
    // Re-encoded, only what the schema knows remains.
    assert_eq!(encode(&status), r#"{"running":true,"status":"running"}"#);
}

#[test]
fn unknown_enum_values_decode_with_their_text() {
    let reply = raw(r#"{"status": "hibernating\u0021", "running": false}"#);
    let status = QueryStatus::decode_response(reply).unwrap();
    let RunState::Unknown(text) = status.status else {
        panic!("decoded {:?}", status.status);
    };
    assert_eq!(text, "hibernating!");
    assert_eq!(status.status.as_str(), r"hibernating\u0021");
    // Sent back as the same text.
    assert_eq!(
        encode(&status),
        r#"{"running":false,"status":"hibernating!"}"#
    );
    // Known values are never Unknown, and every known value maps to its own variant.
    for value in RunState::VALUES {
        let text = format!("\"{value}\"");
        let decoded: RunState<'_> =
            qmp_core::commands::FromRawJson::from_raw_json(raw(&text)).unwrap();
        assert!(!matches!(decoded, RunState::Unknown(_)), "{value}");
        assert_eq!(decoded.as_str(), *value);
    }
}

#[test]
fn unknown_union_branches_keep_their_tag_and_object() {
    // A CPU of a target this schema has never heard of, beside a known one.
    let reply = raw(
        r#"[{"cpu-index": 0, "qom-path": "/machine/cpu[0]", "thread-id": 7, "target": "x86_64"},
            {"cpu-index": 1, "qom-path": "/machine/cpu[1]", "thread-id": 8,
             "target": "riscv128", "hart-flavour": "spicy"}]"#,
    );
    let cpus = QueryCpusFast::decode_response(reply).unwrap();
    let cpus: Vec<_> = cpus.iter().map(Result::unwrap).collect();
    assert_eq!(cpus.len(), 2);
    assert!(matches!(cpus[0].target, CpuInfoFastBranch::X8664));
    let CpuInfoFastBranch::Unknown { tag, raw: object } = cpus[1].target else {
        panic!("decoded {:?}", cpus[1].target);
    };
    assert_eq!(tag, "riscv128");
    let flavour = object.get("hart-flavour").and_then(|v| v.as_json_str());
    assert_eq!(flavour.unwrap(), "spicy");
    assert_eq!(cpus[1].qom_path, "/machine/cpu[1]");
    assert_eq!(cpus[1].target.tag().as_str(), "riscv128");
}

#[test]
fn unknown_job_types_and_statuses_in_a_job_list() {
    let reply = raw(
        r#"[{"type": "mirror", "device": "j0", "len": 10, "offset": 5, "busy": true,
             "paused": false, "speed": 0, "io-status": "ok", "ready": false,
             "status": "running", "auto-finalize": true, "auto-dismiss": true,
             "actively-synced": true, "new-member": 1},
            {"type": "teleport", "device": "j1", "len": 10, "offset": 5, "busy": true,
             "paused": false, "speed": 0, "io-status": "quantum-error", "ready": false,
             "status": "entangled", "auto-finalize": true, "auto-dismiss": true}]"#,
    );
    let jobs: Vec<_> = QueryBlockJobs::decode_response(reply)
        .unwrap()
        .iter()
        .map(Result::unwrap)
        .collect();
    let BlockJobInfoBranch::Mirror(mirror) = jobs[0].r#type else {
        panic!("decoded {:?}", jobs[0].r#type);
    };
    assert_eq!(mirror.actively_synced, Some(true));
    assert_eq!(jobs[0].r#type.tag(), JobType::Mirror);
    let BlockJobInfoBranch::Unknown { tag, .. } = jobs[1].r#type else {
        panic!("decoded {:?}", jobs[1].r#type);
    };
    assert_eq!(tag, "teleport");
    assert!(matches!(jobs[1].status, JobStatus::Unknown(s) if s == "entangled"));
    assert_eq!(jobs[1].io_status.as_str(), "quantum-error");
}

#[test]
fn events_tolerate_the_same() {
    let data = raw(r#"{"id": "job0", "status": "entangled", "since": "qemu 99"}"#);
    let event = JobStatusChangeEvent::from_event("JOB_STATUS_CHANGE", Some(data))
        .unwrap()
        .unwrap();
    assert_eq!(event.id, "job0");
    assert!(matches!(event.status, JobStatus::Unknown(s) if s == "entangled"));
    assert!(JobStatusChangeEvent::from_event("SHUTDOWN", Some(data)).is_none());
}

#[test]
fn what_the_schema_requires_is_still_required() {
    // `running` is required in StatusInfo; `status` of the wrong JSON type is an error.
    assert!(QueryStatus::decode_response(raw(r#"{"status": "running"}"#)).is_err());
    assert!(QueryStatus::decode_response(raw(r#"{"status": 3, "running": true}"#)).is_err());
    assert_eq!(
        QueryStatus::decode_response(raw("[]")).unwrap_err(),
        DecodeError::NotAnObject
    );
}

#[test]
fn replies_of_qemu_7_2_decode() {
    // 7.2's query-dirty-rate has no `calc-time-unit` (10.0 requires it).
    let reply = raw(
        r#"{"status": "unstarted", "start-time": 0, "calc-time": 0, "sample-pages": 512,
            "mode": "page-sampling"}"#,
    );
    let info = QueryDirtyRate::decode_response(reply).unwrap();
    assert_eq!(info.status, DirtyRateStatus::Unstarted);
    assert_eq!(info.calc_time_unit, None);
    assert_eq!(info.sample_pages, 512);
    assert_eq!(
        encode(&info),
        r#"{"status":"unstarted","start-time":0,"calc-time":0,"sample-pages":512,"mode":"page-sampling"}"#
    );
    // 10.0's reply, with it, keeps it.
    let reply = raw(
        r#"{"status": "unstarted", "start-time": 0, "calc-time": 0, "calc-time-unit": "second",
            "sample-pages": 512, "mode": "page-sampling"}"#,
    );
    let info = QueryDirtyRate::decode_response(reply).unwrap();
    assert!(info.calc_time_unit.is_some());

    // 7.2's SevInfo is a struct without the `sev-type` discriminator 10.0's union has: it
    // decodes to the untagged variant, holding the object, and re-encodes with every member.
    let text = r#"{"enabled":true,"api-major":0,"api-minor":24,"build-id":15,"policy":1,"state":"running","handle":1}"#;
    let sev = QuerySev::decode_response(raw(text)).unwrap();
    assert_eq!(sev.api_minor, 24);
    let SevInfoBranch::Untagged(object) = sev.sev_type else {
        panic!("decoded {:?}", sev.sev_type);
    };
    assert_eq!(object.get("handle").and_then(|h| h.as_u64()), Some(1));
    assert_eq!(sev.sev_type.tag(), None);
    // The base members first, then the rest as they came.
    assert_eq!(
        encode(&sev),
        r#"{"enabled":true,"api-major":0,"api-minor":24,"build-id":15,"state":"running","policy":1,"handle":1}"#
    );
    // 10.0's, with the discriminator, selects its variant.
    let sev = QuerySev::decode_response(raw(
        r#"{"enabled":true,"api-major":0,"api-minor":24,"build-id":15,"state":"running",
            "sev-type":"sev","policy":1,"handle":1}"#,
    ))
    .unwrap();
    assert_eq!(sev.sev_type.tag(), Some(SevGuestType::Sev));
    assert!(matches!(sev.sev_type, SevInfoBranch::Sev(branch) if branch.handle == 1));
    // What 7.2 sent as well is still required.
    assert!(QuerySev::decode_response(raw(r#"{"enabled":true,"state":"running"}"#)).is_err());

    // 7.2's BlockJobInfo is a struct with `type` as a string; 10.0's union on `type` has
    // a mirror branch requiring `actively-synced` (since 8.2), which 7.2 does not send.
    let text = r#"[{"auto-finalize":true,"io-status":"ok","device":"m0","auto-dismiss":true,"busy":false,"len":4194304,"offset":4194304,"status":"ready","paused":false,"speed":0,"ready":true,"type":"mirror"}]"#;
    let jobs = QueryBlockJobs::decode_response(raw(text)).unwrap();
    let job = jobs.iter().next().unwrap().unwrap();
    assert_eq!(job.device, "m0");
    assert_eq!(job.r#type.tag(), JobType::Mirror);
    let BlockJobInfoBranch::Mirror(mirror) = job.r#type else {
        panic!("decoded {:?}", job.r#type);
    };
    assert_eq!(mirror.actively_synced, None);
    assert!(!encode(&job).contains("actively-synced"));
    // What 7.2 sent as well is still required.
    assert!(
        QueryBlockJobs::decode_response(raw(r#"[{"type":"mirror","device":"m0"}]"#))
            .unwrap()
            .iter()
            .next()
            .unwrap()
            .is_err()
    );
}
