//! Starts a private `qemu-storage-daemon`, connects the blocking client, and shows the
//! server's version and block nodes, then the events of a small job.
//!
//! `cargo run -p qmp-std --example query_status`

use core::time::Duration;

use qmp_std::launch::{Launcher, ServerKind};
use qmp_std::qmp_core::commands::QueryVersion;
use qmp_std::{Client, ConnectOptions};
use serde_json::json;

fn main() -> Result<(), Box<dyn core::error::Error>> {
    let qsd = Launcher::new(ServerKind::StorageDaemon).spawn()?;
    let client = Client::connect_unix(qsd.socket_path(), ConnectOptions::new())?;
    let info = client.info();
    println!(
        "connected to QEMU {} ({}), capabilities {:?}",
        info.version.map(|v| v.to_string()).unwrap_or_default(),
        info.package,
        info.capabilities
    );

    let version = client.call(&QueryVersion, |v| v.qemu)?;
    println!("query-version: {version}");

    client.execute_value(
        "blockdev-add",
        json!({"driver": "null-co", "node-name": "null0", "size": 1048576}),
    )?;
    let nodes = client.execute_value("query-named-block-nodes", json!({"flat": true}))?;
    for node in nodes.as_array().into_iter().flatten() {
        println!(
            "node {} driver {} size {}",
            node["node-name"], node["drv"], node["image"]["virtual-size"]
        );
    }

    let jobs = client.subscribe_filtered(&["JOB_STATUS_CHANGE"]);
    let image = qsd.dir().join("example.img");
    client.execute_value(
        "blockdev-create",
        json!({"job-id": "create", "options": {"driver": "file", "filename": image, "size": 1048576}}),
    )?;
    loop {
        let event = jobs.recv_timeout(Duration::from_secs(10))?;
        let status = event.data_value()["status"].clone();
        println!("job {}: {status}", event.data_value()["id"]);
        if status == "concluded" {
            break;
        }
    }
    client.execute_value("job-dismiss", json!({"id": "create"}))?;
    client.close();
    Ok(())
}
