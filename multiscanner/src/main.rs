//! The `multiscanner` binary: parses the command line, loads the config,
//! starts telemetry and hands over to the component libraries.

mod config;
mod mesh;
mod scan;
mod telemetry;

use std::{net::SocketAddr, path::PathBuf, process::ExitCode};

use clap::{Args, Parser, Subcommand};

use crate::config::{Config, DEFAULT_TOML};

#[derive(Parser)]
#[command(name = "multiscanner", version, about = "Distributed file analysis")]
struct Cli {
    /// Configuration file (TOML); `multiscanner config init` prints one.
    #[arg(long, short = 'c', global = true, env = "MULTISCANNER_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Analyse files and directories (recursively) once, on an in-process
    /// mesh, and print one report per file.
    Scan {
        /// Print NDJSON: one report object per line, as each file finishes.
        #[arg(long)]
        json: bool,
        /// Write the reports to FILE instead of standard output.
        #[arg(short = 'o', long = "output", value_name = "FILE")]
        output: Option<PathBuf>,
        /// In-process workers.
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Keep the stores in the configured data directory instead of a
        /// temporary one removed afterwards.
        #[arg(long)]
        keep_data: bool,
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,
    },
    /// Scheduler and workers in one process, talking gRPC over loopback;
    /// with --http-addr, the REST gateway too.
    AllInOne {
        #[command(flatten)]
        server: ServerArgs,
        #[arg(long, default_value_t = 1)]
        workers: u32,
        /// Also serve the REST API here (the gateway calls this process's
        /// scheduler).
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<SocketAddr>,
    },
    /// The REST gateway alone, calling a scheduler.
    Gateway {
        #[arg(long, value_name = "HOST:PORT")]
        http_addr: Option<SocketAddr>,
        /// The scheduler's gRPC URL (`http://HOST:PORT`).
        #[arg(long, value_name = "URL")]
        scheduler: Option<String>,
    },
    /// The scheduler alone.
    Scheduler {
        #[command(flatten)]
        server: ServerArgs,
    },
    /// A worker dialling one or more schedulers.
    Worker {
        /// Scheduler URL (`http://HOST:PORT`); repeat for several.
        #[arg(long = "scheduler", value_name = "URL")]
        schedulers: Vec<String>,
        #[arg(long)]
        concurrency: Option<u32>,
    },
    /// List the analysis modules, their versions, whether they are enabled
    /// and, if they cannot run here, why.
    Modules,
    /// Configuration helpers.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
}

/// Where a scheduler listens and keeps its data.
#[derive(Args)]
struct ServerArgs {
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    #[arg(long, value_name = "HOST:PORT")]
    grpc_addr: Option<SocketAddr>,
    /// `sqlite://PATH` or `postgres://USER@HOST:PORT/DB`.
    #[arg(long, value_name = "URL")]
    task_store: Option<String>,
    /// `sqlite://PATH`, or `http(s)://HOST:PORT` of Elasticsearch or
    /// OpenSearch.
    #[arg(long, value_name = "URL")]
    report_store: Option<String>,
    /// `file://DIR` or `s3://BUCKET[/PREFIX]` (endpoint and keys in the
    /// `[scheduler.s3]` section).
    #[arg(long, value_name = "URL")]
    blob_store: Option<String>,
}

impl ServerArgs {
    /// Lays the flags given over the configuration.
    fn apply(self, config: &mut Config) {
        if let Some(d) = self.data_dir {
            config.data_dir = d;
        }
        let s = &mut config.scheduler;
        if let Some(a) = self.grpc_addr {
            s.grpc_addr = a;
        }
        for (flag, slot) in [
            (self.task_store, &mut s.task_store),
            (self.report_store, &mut s.report_store),
            (self.blob_store, &mut s.blob_store),
        ] {
            if let Some(url) = flag {
                *slot = url;
            }
        }
    }
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Print the full, commented default configuration.
    Init,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    if let Command::Config {
        command: ConfigCommand::Init,
    } = cli.command
    {
        print!("{DEFAULT_TOML}");
        return Ok(ExitCode::SUCCESS);
    }
    let mut config = Config::load(cli.config.as_deref())?;
    match cli.command {
        Command::Scan {
            json,
            output,
            workers,
            keep_data,
            paths,
        } => {
            let _telemetry = telemetry::init("warn");
            let options = scan::ScanOptions {
                paths,
                ndjson: json,
                output,
                workers,
                keep_data,
            };
            let failed = match scan::run(config, options, shutdown_signal()).await? {
                scan::ScanEnd::Done { failed } => failed,
                scan::ScanEnd::Interrupted => {
                    eprintln!("interrupted; reports already printed are complete");
                    return Ok(ExitCode::from(130));
                }
            };
            if failed > 0 {
                eprintln!("{failed} path(s) could not be analysed");
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::AllInOne {
            server,
            workers,
            http_addr,
        } => {
            let _telemetry = telemetry::init("info");
            server.apply(&mut config);
            config.scheduler.auth = config.auth.clone();
            let mut mesh = mesh::Mesh::start(&config, workers).await?;
            let gateway = match http_addr {
                Some(addr) => {
                    let mut gc = config.gateway.clone();
                    gc.http_addr = addr;
                    gc.scheduler = format!("http://{}", mesh.addr);
                    let bound =
                        multiscanner_gateway::BoundGateway::bind(gc, config.auth.clone()).await;
                    let bound = match bound {
                        Ok(b) => b,
                        Err(e) => {
                            mesh.abort().await;
                            return Err(e);
                        }
                    };
                    let (stop, rx) = tokio::sync::watch::channel(false);
                    let handle = tokio::spawn(bound.serve(async move {
                        let mut rx = rx;
                        let _ = rx.wait_for(|s| *s).await;
                    }));
                    Some((stop, handle))
                }
                None => None,
            };
            tokio::select! {
                res = mesh.failed() => res?,
                () = shutdown_signal() => {
                    if let Some((stop, handle)) = gateway {
                        let _ = stop.send(true);
                        handle.await??;
                    }
                    mesh.stop().await?
                }
            }
        }
        Command::Gateway {
            http_addr,
            scheduler,
        } => {
            let _telemetry = telemetry::init("info");
            if let Some(a) = http_addr {
                config.gateway.http_addr = a;
            }
            if let Some(s) = scheduler {
                config.gateway.scheduler = s;
            }
            multiscanner_gateway::run(config.gateway, config.auth, shutdown_signal()).await?;
        }
        Command::Scheduler { server } => {
            let _telemetry = telemetry::init("info");
            server.apply(&mut config);
            config.resolve_stores();
            config.scheduler.auth = config.auth.clone();
            multiscanner_scheduler::run(config.scheduler, shutdown_signal()).await?;
        }
        Command::Worker {
            schedulers,
            concurrency,
        } => {
            let _telemetry = telemetry::init("info");
            if !schedulers.is_empty() {
                config.worker.schedulers = schedulers;
            }
            if let Some(n) = concurrency {
                config.worker.concurrency = n;
            }
            multiscanner_worker::run(config.worker, shutdown_signal()).await?;
        }
        Command::Modules => {
            multiscanner_worker::Registry::from_config(&config.worker.modules)?;
            print_modules(&config);
        }
        Command::Config { .. } => unreachable!("handled above"),
    }
    Ok(ExitCode::SUCCESS)
}

fn print_modules(config: &Config) {
    let enabled = &config.worker.modules.enabled;
    println!("{:<16} {:<10} {:<8} STATUS", "MODULE", "VERSION", "ENABLED");
    for m in multiscanner_worker::registry::builtin() {
        let status = match m.check() {
            Ok(()) => "ready".to_owned(),
            Err(why) => format!("cannot run: {why}"),
        };
        let on = if enabled.iter().any(|e| e == m.name()) {
            "yes"
        } else {
            "no"
        };
        println!("{:<16} {:<10} {:<8} {status}", m.name(), m.version(), on);
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled, so a signal that
/// arrives while a command is still starting is not lost (nor fatal).
fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    use tokio::signal::unix::{SignalKind, signal};
    let int = signal(SignalKind::interrupt());
    let term = signal(SignalKind::terminate());
    async move {
        match (int, term) {
            (Ok(mut int), Ok(mut term)) => {
                tokio::select! {
                    _ = int.recv() => {}
                    _ = term.recv() => {}
                }
            }
            // Without handlers the default actions still stop the process.
            _ => std::future::pending::<()>().await,
        }
        tracing::info!("shutdown requested");
    }
}
