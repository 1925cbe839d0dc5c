//! `send`, `stats`, `online` and `position`: the publish protocol from the
//! shell, for operators and scripts. They use the same blocking client as PHP
//! does.
//!
//! A count that left out cluster nodes is still the answer: `send` prints it
//! alone on standard output, as always, so `$(push-core send ...)` keeps
//! capturing a number, and says it is partial on standard error, where a
//! person sees it and a script's capture does not. `online` prints JSON, so
//! it carries the flag as `"partial"`.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::Args;
use push_client::{Client, ClientError, ClientOptions, DEFAULT_SOCKET_PATH, Publish, Target};

use crate::default_socket;

#[derive(Args)]
pub struct SocketArgs {
    /// The daemon's publish socket [default: where `push-core serve` run by
    /// this user puts it: /run/push-core/push.sock as root, otherwise
    /// $XDG_RUNTIME_DIR/push-core/push.sock or /tmp/push-core-UID/push.sock]
    #[arg(long, env = "PUSH_CORE_SOCKET", value_name = "PATH")]
    socket: Option<PathBuf>,
    /// Give up on an unresponsive daemon after this long
    #[arg(long, default_value = "2s", value_parser = push_core::config::values::duration::parse)]
    timeout: std::time::Duration,
}

#[derive(Args)]
pub struct SendArgs {
    #[command(flatten)]
    socket: SocketArgs,
    #[arg(long, default_value = "/")]
    namespace: String,
    /// The event name the page listens for
    #[arg(long)]
    event: String,
    /// Deliver only to this user's connections; repeat for more
    #[arg(long = "user", value_name = "ID")]
    users: Vec<String>,
    /// Deliver only to this room's members; repeat for more
    #[arg(long = "room", value_name = "ROOM")]
    rooms: Vec<String>,
    /// Leave this user out; repeat for more
    #[arg(long = "except-user", value_name = "ID")]
    except_users: Vec<String>,
    /// The message as JSON text, or - to read it from standard input
    data: String,
}

#[derive(Args)]
pub struct OnlineArgs {
    #[command(flatten)]
    socket: SocketArgs,
    #[arg(long, default_value = "/")]
    namespace: String,
    /// The user id as the site's auth endpoint reports it
    user: String,
}

#[derive(Args)]
pub struct PositionArgs {
    #[command(flatten)]
    socket: SocketArgs,
    #[arg(long, default_value = "/")]
    namespace: String,
}

/// What `send` says on standard error when its count is partial.
const PARTIAL_NOTE: &str = "the count is partial: some cluster nodes' figures may be out of date or missing, so more connections may have received the message";

/// Prints an error the way a shell user expects and picks the exit code.
pub fn report(result: Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("push-core: {error:#}");
            ExitCode::FAILURE
        }
    }
}

impl SocketArgs {
    fn path(&self) -> PathBuf {
        self.socket
            .clone()
            .unwrap_or_else(default_socket::for_this_user)
    }

    /// Runs `ask` on a client of the socket. A user who reached no daemon
    /// at their own default, while the system daemon's socket exists, is
    /// told how to reach that one.
    fn ask<T>(&self, ask: impl FnOnce(&mut Client) -> Result<T, ClientError>) -> Result<T> {
        let path = self.path();
        let mut client = Client::new(ClientOptions {
            socket_path: path.clone(),
            timeout: self.timeout,
            client_name: concat!("push-core-cli/", env!("CARGO_PKG_VERSION")).to_owned(),
        });
        let result = ask(&mut client);
        let system_socket = Path::new(DEFAULT_SOCKET_PATH);
        match result {
            Err(error @ ClientError::Unreachable { .. })
                if self.socket.is_none() && path != system_socket && system_socket.exists() =>
            {
                Err(error).context(format!(
                    "no daemon of this user at {}; to reach the system daemon, pass --socket {DEFAULT_SOCKET_PATH}",
                    path.display()
                ))
            }
            other => Ok(other?),
        }
    }
}

pub fn send(args: SendArgs) -> Result<()> {
    let data = if args.data == "-" {
        let mut data = String::new();
        std::io::stdin()
            .read_to_string(&mut data)
            .context("cannot read the message from standard input")?;
        data
    } else {
        args.data
    };
    let target = Target {
        users: args.users.iter().map(Into::into).collect(),
        rooms: args.rooms.iter().map(Into::into).collect(),
        except_users: args.except_users.iter().map(Into::into).collect(),
    };
    let publish = Publish {
        namespace: &args.namespace,
        event: &args.event,
        target,
        payload: data.trim().as_bytes(),
    };
    let recipients = args.socket.ask(|client| client.publish(&publish))?;
    println!("{}", recipients.total);
    if recipients.partial {
        eprintln!("push-core: {PARTIAL_NOTE}");
    }
    Ok(())
}

pub fn stats(args: SocketArgs) -> Result<()> {
    println!("{}", args.ask(Client::stats)?);
    Ok(())
}

pub fn online(args: OnlineArgs) -> Result<()> {
    let connections = args
        .socket
        .ask(|client| client.online(&args.namespace, &args.user))?;
    let answer = serde_json::json!({
        "namespace": args.namespace,
        "user": args.user,
        "online": connections.total > 0,
        "connections": connections.total,
        "partial": connections.partial,
    });
    println!("{answer}");
    Ok(())
}

/// Prints the offset alone on its line, so a script can capture it with
/// `$(push-core position ...)`.
pub fn position(args: PositionArgs) -> Result<()> {
    println!(
        "{}",
        args.socket.ask(|client| client.position(&args.namespace))?
    );
    Ok(())
}
