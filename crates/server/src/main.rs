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
    /// Audit a configuration without serving it: names a certificate covers that no
    /// virtual host serves (coalescing browsers get 421 there), names no certificate
    /// covers, virtual hosts sharing a certificate with different TLS requirements, and a
    /// proof that no connection reaches a client-certificate host it did not authenticate
    /// for. Exit status: 0 clean, 1 warnings (with --deny-warnings), 2 errors.
    Check(CheckArgs),
    /// Probe a live server (any server) for coalescing hazards: one TLS connection, then a
    /// request for every name its certificate covers on that same connection, as a
    /// coalescing browser sends them. Exit status: 0 fine, 1 hazards (421 or another
    /// refusal on a coalesced connection, a certificate expiring within 14 days),
    /// 2 violations (client-certificate bypass, uncovered names served, a certificate that
    /// fails verification or has expired), 3 the probe itself or a request failed.
    Probe(ProbeArgs),
}

#[derive(Debug, clap::Args)]
struct CheckArgs {
    /// The TOML configuration to audit.
    #[arg(long, short)]
    config: PathBuf,
    /// Output format; `json` is stable for CI (see docs/check.md).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
    /// Exit 1 when there are warnings but no errors.
    #[arg(long)]
    deny_warnings: bool,
}

#[derive(Debug, clap::Args)]
struct ProbeArgs {
    /// The server to probe, e.g. `https://www.example.com` or `https://a.localhost:8443/`.
    url: String,
    /// Send this SNI instead of the URL's host.
    #[arg(long, conflicts_with = "no_sni")]
    sni: Option<String>,
    /// Send no SNI at all.
    #[arg(long)]
    no_sni: bool,
    /// Connect to this address instead of resolving the URL's host: HOST:ADDR (curl's
    /// form, the host is checked against the URL) or ADDR, where ADDR is an IP address,
    /// with or without a port.
    #[arg(long, value_name = "HOST:ADDR")]
    resolve: Option<String>,
    /// CA certificates (PEM) to verify the server's certificate with.
    #[arg(long)]
    cacert: Option<PathBuf>,
    /// A client certificate chain (PEM) to present; needs --key.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// The client certificate's private key (PEM).
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// More names to try on the connection, comma-separated.
    #[arg(long, value_delimiter = ',')]
    names: Vec<String>,
    /// Seconds to wait for the connection and for each answer: from 0.001 to 3600.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Send HEAD instead of GET.
    #[arg(long)]
    head: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// The TOML configuration (see docs/server.md). Without it: the embedded set-up.
    /// SIGHUP reads it again (run `misdirect check` on the new file first): new connections
    /// get the new configuration and certificates, open ones keep theirs; a file that fails
    /// to load changes nothing.
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen on this IP address instead of the configured one.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// Listen on this port instead of the configured one (0: any free port).
    #[arg(long)]
    port: Option<u16>,
    /// Where the embedded set-up writes its CA certificate and client certificate and key,
    /// once the listener is bound. It must be private: a new one is created with mode 0700;
    /// a symbolic link, a directory writable by group or others, or another user's is refused.
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
        Command::Check(args) => check(args),
        Command::Probe(args) => probe(args),
    }
}

fn check(args: CheckArgs) -> ExitCode {
    let report =
        Config::from_file(&args.config).and_then(|config| misdirect_server::check::check(&config));
    match report {
        Ok(report) => {
            match args.format {
                Format::Text => emit(&report.to_text()),
                Format::Json => emit(&format!("{:#}\n", report.to_json())),
            }
            ExitCode::from(report.exit_code(args.deny_warnings))
        }
        Err(err) => {
            eprintln!("misdirect: error: {err}");
            ExitCode::from(2)
        }
    }
}

fn probe(args: ProbeArgs) -> ExitCode {
    use misdirect_server::probe::{ProbeOptions, probe};
    let mut options = ProbeOptions::new(&args.url);
    options.sni = args.sni;
    options.no_sni = args.no_sni;
    options.cacert = args.cacert;
    options.client_cert = args.cert.zip(args.key);
    options.names = args.names;
    options.head = args.head;
    options.timeout = match misdirect_server::probe::parse_timeout(args.timeout) {
        Ok(timeout) => timeout,
        Err(err) => {
            eprintln!("misdirect: error: {err}");
            return ExitCode::from(3);
        }
    };
    if let Some(resolve) = &args.resolve {
        match misdirect_server::probe::parse_resolve(resolve, &args.url) {
            Ok(addr) => options.resolve = Some(addr),
            Err(err) => {
                eprintln!("misdirect: error: {err}");
                return ExitCode::from(3);
            }
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("misdirect: cannot start the runtime: {err}");
            return ExitCode::from(3);
        }
    };
    match runtime.block_on(probe(&options)) {
        Ok(report) => {
            match args.format {
                Format::Text => emit(&report.to_text()),
                Format::Json => emit(&format!("{:#}\n", report.to_json())),
            }
            ExitCode::from(report.exit_code())
        }
        Err(err) => {
            eprintln!("misdirect: probe failed: {err}");
            ExitCode::from(3)
        }
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
        if let Err(err) = config.override_addr(args.bind, args.port) {
            return fail(&err);
        }
        let mut server = match Server::bind(config).await {
            Ok(server) => server,
            Err(err) => return fail(&err),
        };
        if let Some(path) = args.config.clone() {
            // A reload reads the same file, with the same command-line overrides.
            let (bind, port) = (args.bind, args.port);
            server = server.reload_from(move || {
                let mut config = Config::from_file(&path)?;
                config.override_addr(bind, port)?;
                Ok(config)
            });
        }
        reload_on_hangup(server.reload_handle());
        // Only a server that got its port replaces the files a running one may be using.
        if let Some(embedded) = &embedded {
            if let Err(err) = embedded.write_files() {
                return fail(&err);
            }
            if let Some(addr) = server.local_addrs().first() {
                emit(&format!("{}\n", embedded.instructions(*addr)));
            }
        }
        server.run(shutdown_signal()).await;
        ExitCode::SUCCESS
    })
}

/// Writes a report to standard output; a closed pipe (`| head`) is not an error.
fn emit(text: &str) {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

fn fail(err: &misdirect_server::Error) -> ExitCode {
    eprintln!("misdirect: error: {err}");
    ExitCode::FAILURE
}

fn init_logs(format: LogFormat) {
    use std::io::IsTerminal as _;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    match format {
        // Colour for a person at a terminal only: never in a file or pipe, never with
        // NO_COLOR set to anything but the empty string (https://no-color.org).
        LogFormat::Human => builder
            .with_ansi(
                std::io::stderr().is_terminal()
                    && std::env::var_os("NO_COLOR").is_none_or(|value| value.is_empty()),
            )
            .init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}

/// SIGHUP (what `systemctl reload` sends with `ExecReload=/bin/kill -HUP $MAINPID`)
/// reloads the configuration; the server logs the outcome.
fn reload_on_hangup(handle: misdirect_server::ReloadHandle) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hangup) => {
                tokio::spawn(async move {
                    while hangup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading the configuration");
                        // The server logs the outcome, with the reason of a failure.
                        let _ = handle.reload().await;
                    }
                });
            }
            Err(err) => tracing::warn!(error = %err, "cannot listen for SIGHUP: no reloads"),
        }
    }
    #[cfg(not(unix))]
    drop(handle);
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
