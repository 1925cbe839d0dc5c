//! Embedding push-core in your own axum application.
//!
//! The app below serves socket.io next to its own routes, and publishes from
//! a handler through the `Dispatcher` instead of the Unix socket.
//!
//! ```sh
//! cargo run -p push-core --example embed
//! # connect a socket.io client to http://127.0.0.1:3001, then:
//! curl -X POST http://127.0.0.1:3001/announce
//! ```

use axum::Router;
use axum::extract::State;
use axum::routing::post;
use push_client::{Publish, Target};
use push_core::{Config, Dispatcher, PushCore};

async fn announce(State(dispatcher): State<Dispatcher>) -> String {
    let publish = Publish {
        namespace: "/",
        event: "announcement",
        target: Target::everyone(),
        payload: br#"{"text":"Hello from an embedded push-core"}"#,
    };
    match dispatcher.publish(&publish).await {
        Ok(count) => format!("delivered to {} connections\n", count.total),
        Err(error) => format!("not delivered: {error}\n"),
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // No publish socket is bound here: the app publishes through the
    // dispatcher, so the socket settings are never used.
    let config = Config::builder()
        .set("allowed_origins", ["http://127.0.0.1:3001"])
        .build()?;
    let (core, push_routes) = PushCore::new(&config)?;

    let app = Router::new()
        .route("/announce", post(announce))
        .with_state(core.dispatcher())
        .merge(push_routes);

    let listener = tokio::net::TcpListener::bind("127.0.0.1:3001").await?;
    println!("listening on http://{}", listener.local_addr()?);
    axum::serve(listener, app).await?;
    Ok(())
}
