//! Replays inputs through a target's checks outside libFuzzer, printing what the session
//! targets did: `cargo +nightly run --example replay -- TARGET FILE...`.

use qmp_fuzz::session::{self, Mode, Script};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((target, files)) = args.split_first() else {
        eprintln!(
            "usage: replay TARGET FILE...   (targets: {:?})",
            qmp_fuzz::TARGETS
        );
        std::process::exit(2);
    };
    for file in files {
        let data = std::fs::read(file).expect("read input");
        let mode = match target.as_str() {
            "client_session" => Some(Mode::Qmp),
            "guest_agent" => Some(Mode::GuestAgent),
            _ => None,
        };
        if let Some(mode) = mode {
            let script = Script::decode(&data);
            println!("{file}: {script:#?}");
            let transcript = session::run(&script, mode, false);
            for entry in &transcript.log {
                println!("  {entry}");
            }
            println!("  transmitted: {}", String::from_utf8_lossy(&transcript.tx));
        }
        assert!(
            qmp_fuzz::check_target(target, &data),
            "unknown target {target}"
        );
        println!("{file}: ok");
    }
}
