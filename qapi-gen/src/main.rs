//! `qapi-gen`: reads QEMU's QAPI schema and writes qmp-core's generated vocabulary.
//! See README.md for how to run it.

use qapi_gen::schema;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let Some(path) = args.get(1) else {
        eprintln!("usage: qapi-gen SCHEMA.json");
        std::process::exit(2);
    };
    match schema::Schema::load(std::path::Path::new(path)) {
        Ok(schema) => {
            let mut counts = std::collections::BTreeMap::new();
            for def in &schema.defs {
                let kind = match def.kind {
                    schema::Kind::Enum { .. } => "enum",
                    schema::Kind::Struct { .. } => "struct",
                    schema::Kind::Union { .. } => "union",
                    schema::Kind::Alternate { .. } => "alternate",
                    schema::Kind::Command { .. } => "command",
                    schema::Kind::Event { .. } => "event",
                };
                *counts.entry(kind).or_insert(0) += 1;
            }
            println!("{counts:?}");
        }
        Err(e) => {
            eprintln!("qapi-gen: {e}");
            std::process::exit(1);
        }
    }
}
