//! `misdirect`: serve virtual hosts over TLS with HTTP 421 done right.

use std::net::IpAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use misdirect_server::embedded::{DEFAULT_ADDR, Embedded};
use misdirect_server::{Config, Server};
use tracing_subscriber::EnvFilter;

#[derive(Debug, Parser)]
#[command(
    name = "misdirect",
    version,
    about = "HTTP 421 Misdirected Request, done right"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the virtual hosts of a configuration file, or without one the embedded
    /// development set-up on 127.0.0.1:8443.
    Serve(ServeArgs),
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The TOML configuration (see docs/server.md). Without it: the embedded set-up.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen on this IP address instead of the configured one.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Listen on this port instead of the configured one (0: any free port).
    #[arg(long)]
    port: Option<u16>,
    /// Where the embedded set-up writes its CA certificate and client certificate and key.
    #[arg(long, default_value_os_t = std::env::temp_dir().join("misdirect-serve"))]
    out_dir: PathBuf,
    /// Log format on standard error. The level comes from RUST_LOG (default: info).
    #[arg(long, value_enum, default_value_t = LogFormat::Human)]
    log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum LogFormat {
    Human,
    Json,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve(args),
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    init_logs(args.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("misdirect: cannot start the runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        let (config, embedded) = match &args.config {
            Some(path) => match Config::from_file(path) {
                Ok(config) => (config, None),
                Err(err) => return fail(&err),
            },
            None => match Embedded::generate(&args.out_dir, DEFAULT_ADDR) {
                Ok(embedded) => (embedded.config().clone(), Some(embedded)),
                Err(err) => return fail(&err),
            },
        };
        let mut config = config;
        config.override_addr(args.bind, args.port);
        let server = match Server::bind(config).await {
            Ok(server) => server,
            Err(err) => return fail(&err),
        };
        if let (Some(embedded), Some(addr)) = (&embedded, server.local_addrs().first()) {
            println!("{}", embedded.instructions(*addr));
        }
        server.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

fn fail(err: &misdirect_server::Error) -> ExitCode {
    eprintln!("misdirect: error: {err}");
    ExitCode::FAILURE
}

fn init_logs(format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Human => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// SIGINT (Ctrl-C) or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
