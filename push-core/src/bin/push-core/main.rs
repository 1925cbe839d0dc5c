//! The `push-core` command: the daemon (`serve`), its settings
//! (`check-config`, `config-template`) and small tools that talk to a
//! running daemon over its publish socket (`send`, `stats`, `online`,
//! `position`).

mod default_socket;
mod settings;
mod template;
mod tools;

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::LazyLock;

use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{Args, Parser, Subcommand};
use push_core::config::{Config, ConfigError, LogFormat};
use tokio::signal::unix::{SignalKind, signal};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;
use tracing_subscriber::{EnvFilter, Layer as _, fmt, reload};

use crate::settings::ServeArgs;

/// `push-core --version`: the release, and the publish protocol version it
/// speaks, which the PHP extension's must equal (`php --ri push` shows it).
static VERSION: LazyLock<String> = LazyLock::new(|| {
    format!(
        "{} (publish protocol {})",
        env!("CARGO_PKG_VERSION"),
        push_client::PROTOCOL_VERSION
    )
});

#[derive(Parser)]
#[command(
    name = "push-core",
    version = VERSION.as_str(),
    about = "Real-time push for PHP sites: a socket.io server fed over a Unix socket."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(Box<ServeArgs>),
    /// Check the settings serve would use (flags, PUSH_CORE_*, the file)
    /// and print them, secrets hidden; exit 2 naming a bad one.
    CheckConfig(Box<ServeArgs>),
    /// Print a config file with every setting commented out with its
    /// default and what it does; settings given as flags are written set.
    ConfigTemplate(Box<ServeArgs>),
    /// Publish one message, print how many connections it reached.
    Send(tools::SendArgs),
    /// Print the daemon's counters as JSON.
    Stats(tools::SocketArgs),
    /// Tell whether a user is connected to a namespace.
    Online(tools::OnlineArgs),
    /// Print a namespace's current recovery offset, as a page would render it.
    Position(tools::PositionArgs),
}

/// Exit code for a configuration the daemon cannot use; clap uses the same
/// for bad flags.
const EXIT_BAD_CONFIG: u8 = 2;

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(error) => return refuse_arguments(error),
    };
    match cli.command {
        Command::Serve(args) => serve(*args),
        Command::CheckConfig(args) => check_config(*args),
        Command::ConfigTemplate(args) => {
            let serve_flags = ServeArgs::augment_args(clap::Command::new("serve"));
            print!("{}", template::render(&args, &serve_flags));
            ExitCode::SUCCESS
        }
        Command::Send(args) => tools::report(tools::send(args)),
        Command::Stats(args) => tools::report(tools::stats(args)),
        Command::Online(args) => tools::report(tools::online(args)),
        Command::Position(args) => tools::report(tools::position(args)),
    }
}

fn check_config(args: ServeArgs) -> ExitCode {
    match args.resolve() {
        Ok(config) => {
            print!("{}", settings::printable(&config));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("push-core: {error}");
            ExitCode::from(EXIT_BAD_CONFIG)
        }
    }
}

fn serve(args: ServeArgs) -> ExitCode {
    let print_only = args.print_config;
    let config = match args.clone().resolve() {
        Ok(config) => config,
        Err(error) => {
            eprintln!("push-core: {error}");
            return ExitCode::from(EXIT_BAD_CONFIG);
        }
    };
    if print_only {
        print!("{}", settings::printable(&config));
        return ExitCode::SUCCESS;
    }
    if let Err(error) = default_socket::secure_parent(&config.socket) {
        eprintln!("push-core: cannot use the publish socket's directory: {error}");
        return ExitCode::FAILURE;
    }
    let log_level = init_logging(&config);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("push-core: cannot start the async runtime: {error}");
            return ExitCode::FAILURE;
        }
    };
    let served = runtime.block_on(async {
        let (send, configs) = tokio::sync::mpsc::channel(1);
        tokio::spawn(reload_on_sighup(args, send));
        let reloads = push_core::Reloads {
            configs,
            log_level: Some(log_level),
        };
        push_core::serve_with_reloads(config, push_core::shutdown::signal_received(), reloads).await
    });
    match served {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!("{error}");
            eprintln!("push-core: {error}");
            ExitCode::FAILURE
        }
    }
}

/// A flag's value that does not parse is reported as a bad setting is,
/// naming the key, the flag and the variable; other mistakes (an unknown
/// flag, `--help`) are clap's to print.
fn refuse_arguments(error: clap::Error) -> ExitCode {
    let key = match (error.kind(), error.get(ContextKind::InvalidArg)) {
        (ErrorKind::ValueValidation, Some(ContextValue::String(arg))) => arg
            .trim_start_matches("--")
            .split([' ', '='])
            .next()
            .and_then(push_core::config::key_for_flag),
        _ => None,
    };
    let message = std::error::Error::source(&error).map(ToString::to_string);
    match (key, message) {
        (Some(key), Some(message)) => {
            eprintln!("push-core: {}", ConfigError::value(key, message));
            ExitCode::from(EXIT_BAD_CONFIG)
        }
        _ => {
            let _ = error.print();
            ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(EXIT_BAD_CONFIG))
        }
    }
}

/// At each SIGHUP, reads the settings again from the same places as at
/// start (the file named then, the environment, the flags given then) and
/// hands them to the daemon, which applies what it can live.
async fn reload_on_sighup(
    args: ServeArgs,
    reloads: tokio::sync::mpsc::Sender<Result<Config, String>>,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => hangups,
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; reloading the configuration needs a restart");
            return;
        }
    };
    while hangups.recv().await.is_some() {
        tracing::info!("SIGHUP received, reloading the configuration");
        let config = args.clone().resolve().map_err(|error| error.to_string());
        if reloads.send(config).await.is_err() {
            return;
        }
    }
}

/// Sets up logging with the level behind a reload layer, and returns the
/// hook a configuration reload changes the level with.
fn init_logging(config: &Config) -> push_core::LogLevelHook {
    // The level was checked when the config was resolved.
    let filter = EnvFilter::try_new(&config.log_level).unwrap_or_else(|_| EnvFilter::new("info"));
    let (filter, handle) = reload::Layer::new(filter);
    let output = fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    let output = match config.log_format {
        LogFormat::Text => output.boxed(),
        LogFormat::Json => output.json().boxed(),
    };
    tracing_subscriber::registry()
        .with(filter)
        .with(output)
        .init();
    Box::new(move |level: &str| {
        let filter = EnvFilter::try_new(level)
            .map_err(|error| format!("{level:?} is not a level or filter ({error})"))?;
        handle.reload(filter).map_err(|error| error.to_string())
    })
}
