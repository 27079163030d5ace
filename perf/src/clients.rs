//! The Rust clients under test, each running one workload against one monitor socket.
//! Every function connects (not measured), warms up with `warmup` commands, then measures
//! `count` commands with a [`Meter`].

use std::io::{BufReader, BufWriter, Read, Write};
use std::os::fd::AsFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use qmp_core::client::Output;
use qmp_core::commands::{QueryQmpSchema, QueryVersion};
use qmp_std::tokio::AsyncClient;
use qmp_std::{Client, ConnectOptions};

use crate::measure::{Meter, Sample};
use crate::Workload;

/// Pipelined workloads run from this many threads or tasks.
pub const PIPELINE_THREADS: u64 = 8;

fn options(workload: Workload) -> ConnectOptions {
    ConnectOptions::new().enable_oob(workload == Workload::Pipelined)
}

/// Decodes the schema into qmp-core's typed entries; returns how many there are.
fn count_schema(
    schema: qmp_core::commands::JsonArray<'_, qmp_core::commands::SchemaInfo<'_>>,
) -> usize {
    schema
        .iter()
        .filter_map(Result::ok)
        .filter(|entry| !entry.meta_type.raw().is_empty())
        .count()
}

// ---- qmp-std, blocking ----

pub fn std_blocking(socket: &Path, workload: Workload, count: u64, warmup: u64) -> Sample {
    let client = Client::connect_unix(socket, options(workload)).expect("connect");
    let one = |client: &Client| match workload {
        Workload::Schema => {
            let reply = client.execute(&QueryQmpSchema).expect("schema");
            assert!(count_schema(reply.get().expect("decode")) > 100);
        }
        _ => {
            let major = client.call(&QueryVersion, |v| v.qemu.major).expect("call");
            assert!(major >= 1);
        }
    };
    let run = |n: u64| {
        if workload == Workload::Pipelined {
            std::thread::scope(|scope| {
                for _ in 0..PIPELINE_THREADS {
                    let client = client.clone();
                    scope.spawn(move || {
                        for _ in 0..n / PIPELINE_THREADS {
                            one(&client);
                        }
                    });
                }
            });
        } else {
            for _ in 0..n {
                one(&client);
            }
        }
    };
    run(warmup);
    let meter = Meter::start();
    run(count);
    let sample = meter.finish(count);
    client.close();
    sample
}

// ---- qmp-std, tokio ----

pub fn std_tokio(socket: &Path, workload: Workload, count: u64, warmup: u64) -> Sample {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let client = AsyncClient::connect_unix(socket, options(workload))
            .await
            .expect("connect");
        async fn one(client: &AsyncClient, workload: Workload) {
            match workload {
                Workload::Schema => {
                    let reply = client.execute(&QueryQmpSchema).await.expect("schema");
                    assert!(count_schema(reply.get().expect("decode")) > 100);
                }
                _ => {
                    let major = client
                        .call(&QueryVersion, |v| v.qemu.major)
                        .await
                        .expect("call");
                    assert!(major >= 1);
                }
            }
        }
        let run = |n: u64| {
            let client = client.clone();
            async move {
                if workload == Workload::Pipelined {
                    let tasks: Vec<_> = (0..PIPELINE_THREADS)
                        .map(|_| {
                            let client = client.clone();
                            tokio::spawn(async move {
                                for _ in 0..n / PIPELINE_THREADS {
                                    one(&client, workload).await;
                                }
                            })
                        })
                        .collect();
                    for task in tasks {
                        task.await.unwrap();
                    }
                } else {
                    for _ in 0..n {
                        one(&client, workload).await;
                    }
                }
            }
        };
        run(warmup).await;
        let meter = Meter::start();
        run(count).await;
        let sample = meter.finish(count);
        client.close();
        sample
    })
}

// ---- qmp-core's embedded-io BlockingDriver over a std socket ----

/// A std Unix socket as an `embedded-io` transport. `read_ready` waits up to 10 ms in
/// `poll(2)` (so the driver's readiness loop sleeps in the kernel instead of spinning)
/// and then says whether a read would return at once.
struct StdSocket(UnixStream);

impl embedded_io::ErrorType for StdSocket {
    type Error = embedded_io::ErrorKind;
}

impl embedded_io::Read for StdSocket {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, Self::Error> {
        self.0.read(buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
}

impl embedded_io::Write for StdSocket {
    fn write(&mut self, buf: &[u8]) -> Result<usize, Self::Error> {
        self.0.write(buf).map_err(|_| embedded_io::ErrorKind::Other)
    }
    fn flush(&mut self) -> Result<(), Self::Error> {
        Ok(())
    }
}

impl embedded_io::ReadReady for StdSocket {
    fn read_ready(&mut self) -> Result<bool, Self::Error> {
        let mut fds = [libc::pollfd {
            fd: std::os::fd::AsRawFd::as_raw_fd(&self.0.as_fd()),
            events: libc::POLLIN,
            revents: 0,
        }];
        // SAFETY: one valid pollfd.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 10) };
        Ok(ready > 0)
    }
}

pub fn eio_driver(socket: &Path, workload: Workload, count: u64, warmup: u64) -> Sample {
    use qmp_core::client::{Client as CoreClient, Config, ExecuteError};
    use qmp_core::io::BlockingDriver;
    let epoch = Instant::now();
    let clock = move || qmp_core::time::Instant::from_micros(epoch.elapsed().as_micros() as u64);
    let stream = UnixStream::connect(socket).expect("connect");
    let (mut rx, mut tx) = (vec![0u8; 256 * 1024], vec![0u8; 4096]);
    let config = Config::qmp().with_oob(workload == Workload::Pipelined);
    let mut client: CoreClient<'_, 8> = CoreClient::new(config, clock(), &mut rx, &mut tx);
    let mut driver = BlockingDriver::new(&mut client, StdSocket(stream), clock);
    driver.wait_ready(|_| {}).expect("ready");
    let mut run = |n: u64| match workload {
        Workload::Sequential => {
            for _ in 0..n {
                let major = driver
                    .call(
                        &QueryVersion,
                        |_| {},
                        |r| r.map(|v| v.qemu.major).unwrap_or(0),
                    )
                    .expect("call");
                assert!(major >= 1);
            }
        }
        Workload::Schema => {
            for _ in 0..n {
                let entries = driver
                    .call(
                        &QueryQmpSchema,
                        |_| {},
                        |r| r.map(count_schema).unwrap_or(0),
                    )
                    .expect("call");
                assert!(entries > 100);
            }
        }
        Workload::Pipelined => {
            let (mut sent, mut answered) = (0, 0);
            while answered < n {
                while sent < n {
                    match driver.client().execute(clock(), &QueryVersion) {
                        Ok(_) => sent += 1,
                        Err(ExecuteError::TooManyInFlight { .. }) => break,
                        Err(error) => panic!("{error}"),
                    }
                }
                driver.step().expect("step");
                while let Some(event) = driver.client().poll_output() {
                    if let Output::Response(response) = event {
                        let outcome = response.decode::<QueryVersion>().expect("decode");
                        assert!(
                            matches!(outcome, qmp_core::client::Outcome::Return(v) if v.qemu.major >= 1)
                        );
                        answered += 1;
                    }
                }
            }
        }
    };
    run(warmup);
    let meter = Meter::start();
    run(count);
    meter.finish(count)
}

// ---- the `qapi` crate, sync ----

/// `buffered`: its best configuration (a `BufWriter`, so each command is one write; by
/// default its serializer writes every JSON token with its own system call), and
/// pipelining by hand (8 requests written, then 8 replies read) instead of a shared
/// `Mutex<Qmp>` for the pipelined workload.
pub fn qapi_sync(
    socket: &Path,
    workload: Workload,
    count: u64,
    warmup: u64,
    buffered: bool,
) -> Sample {
    use qapi::qmp::{qmp_capabilities, query_qmp_schema, query_version, QMPCapability};
    let stream = UnixStream::connect(socket).expect("connect");
    fn one_version<S: std::io::BufRead + Write>(qmp: &mut qapi::Qmp<S>) {
        let version = qmp.execute(&qapi::qmp::query_version {}).expect("execute");
        assert!(version.qemu.major >= 1);
    }
    macro_rules! body {
        ($qmp:expr) => {{
            let mut qmp = $qmp;
            match workload {
                Workload::Pipelined if buffered => {
                    qmp.read_capabilities().expect("greeting");
                    qmp.execute(&qmp_capabilities {
                        enable: Some(vec![QMPCapability::oob]),
                    })
                    .expect("negotiate");
                    let mut run = |n: u64| {
                        let mut left = n;
                        while left > 0 {
                            let batch = left.min(8);
                            for _ in 0..batch {
                                qmp.write_command(&query_version {}).expect("write");
                            }
                            for _ in 0..batch {
                                let version = qmp.read_response::<query_version>().expect("read");
                                assert!(version.qemu.major >= 1);
                            }
                            left -= batch;
                        }
                    };
                    run(warmup);
                    let meter = Meter::start();
                    run(count);
                    meter.finish(count)
                }
                Workload::Pipelined => {
                    qmp.handshake().expect("handshake");
                    let shared = Mutex::new(qmp);
                    let run = |n: u64| {
                        std::thread::scope(|scope| {
                            for _ in 0..PIPELINE_THREADS {
                                scope.spawn(|| {
                                    for _ in 0..n / PIPELINE_THREADS {
                                        one_version(&mut *shared.lock().unwrap());
                                    }
                                });
                            }
                        });
                    };
                    run(warmup);
                    let meter = Meter::start();
                    run(count);
                    meter.finish(count)
                }
                Workload::Sequential => {
                    qmp.handshake().expect("handshake");
                    for _ in 0..warmup {
                        one_version(&mut qmp);
                    }
                    let meter = Meter::start();
                    for _ in 0..count {
                        one_version(&mut qmp);
                    }
                    meter.finish(count)
                }
                Workload::Schema => {
                    qmp.handshake().expect("handshake");
                    let mut one = || {
                        let schema = qmp.execute(&query_qmp_schema {}).expect("execute");
                        assert!(schema.len() > 100);
                    };
                    for _ in 0..warmup {
                        one();
                    }
                    let meter = Meter::start();
                    for _ in 0..count {
                        one();
                    }
                    meter.finish(count)
                }
            }
        }};
    }
    if buffered {
        body!(qapi::Qmp::new(qapi::Stream::new(
            BufReader::new(&stream),
            BufWriter::new(&stream)
        )))
    } else {
        body!(qapi::Qmp::from_stream(&stream))
    }
}

// ---- the `qapi` crate, tokio ----

/// `best`: a current-thread runtime and OOB negotiated for the pipelined workload; the
/// documented way is `#[tokio::main]` (multi-threaded) and `negotiate()`.
pub fn qapi_tokio(
    socket: &Path,
    workload: Workload,
    count: u64,
    warmup: u64,
    best: bool,
) -> Sample {
    use qapi::qmp::{query_qmp_schema, query_version, QMPCapability};
    let runtime = if best {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    }
    .enable_all()
    .build()
    .unwrap();
    runtime.block_on(async {
        let stream = qapi::futures::QmpStreamTokio::open_uds(socket)
            .await
            .expect("connect");
        let stream = if best && workload == Workload::Pipelined {
            stream.negotiate_caps([QMPCapability::oob]).await
        } else {
            stream.negotiate().await
        }
        .expect("negotiate");
        let (qmp, handle) = stream.spawn_tokio();
        let qmp = Arc::new(qmp);
        let run = |n: u64| {
            let qmp = qmp.clone();
            async move {
                match workload {
                    Workload::Sequential => {
                        for _ in 0..n {
                            let version = qmp.execute(query_version {}).await.expect("execute");
                            assert!(version.qemu.major >= 1);
                        }
                    }
                    Workload::Schema => {
                        for _ in 0..n {
                            let schema = qmp.execute(query_qmp_schema {}).await.expect("execute");
                            assert!(schema.len() > 100);
                        }
                    }
                    Workload::Pipelined => {
                        let tasks: Vec<_> = (0..PIPELINE_THREADS)
                            .map(|_| {
                                let qmp = qmp.clone();
                                tokio::spawn(async move {
                                    for _ in 0..n / PIPELINE_THREADS {
                                        let version =
                                            qmp.execute(query_version {}).await.expect("execute");
                                        assert!(version.qemu.major >= 1);
                                    }
                                })
                            })
                            .collect();
                        for task in tasks {
                            task.await.unwrap();
                        }
                    }
                }
            }
        };
        run(warmup).await;
        let meter = Meter::start();
        run(count).await;
        let sample = meter.finish(count);
        drop(qmp);
        handle.abort();
        sample
    })
}
