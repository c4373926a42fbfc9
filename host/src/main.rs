//! `shop`: a wasmtime host that serves a Spin app's HTTP components (`spin.toml`).
//!
//! This file only parses the command line and starts things; see `commands/` for what each command does.

use shop::app;
use shop::capabilities::{self, bounds::GuestBounds};
use shop::commands::{self, build, createsuperuser};
use shop::config::{manifest, secrets};
use shop::http::{admission, client_addr, per_client, server, spin_headers};
use shop::links::Share;
use shop::runtime::engine;
use shop::telemetry;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

/// Serves a Spin app's HTTP components on wasmtime.
#[derive(Parser)]
#[command(name = "shop", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// Where the app and its data are; shared by every command that loads the app.
#[derive(clap::Args)]
struct AppArgs {
    /// The app's manifest.
    #[arg(long, short = 'f', default_value = "spin.toml")]
    manifest: PathBuf,
    /// Spin runtime config (SQLite files); default: runtime-config.toml next to the manifest.
    #[arg(long, alias = "runtime-config-file")]
    runtime_config: Option<PathBuf>,
    /// Give every service its own schema in this Postgres instead of its SQLite file.
    #[arg(long, value_name = "postgres://...")]
    database_url: Option<String>,
    /// The most connections each service's Postgres pool may open (keep hosts × services ×
    /// this under the server's max_connections).
    #[arg(long, default_value_t = app::POSTGRES_POOL_SIZE)]
    postgres_pool_size: u32,
    /// How long a request waits for a pooled Postgres connection before its service answers 503
    /// (a server that is down or swamped): `1s`, `500ms`.
    #[arg(long, default_value = "1s", value_parser = parse_duration)]
    postgres_acquire_timeout: Duration,
}

/// What one guest's database call may make the host do (see README's security model).
#[derive(clap::Args)]
struct BoundsArgs {
    /// The longest statement text a guest may send.
    #[arg(long, default_value = "64KiB", value_parser = parse_small_size)]
    max_sql_bytes: usize,
    /// The largest single value a statement may bind or build (SQLite's SQLITE_LIMIT_LENGTH).
    #[arg(long, default_value = "4MiB", value_parser = parse_small_size)]
    max_value_bytes: usize,
    /// The most rows one statement may answer.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    max_result_rows: u32,
    /// The most bytes of values one statement may answer.
    #[arg(long, default_value = "8MiB", value_parser = parse_small_size)]
    max_result_bytes: usize,
    /// The largest a service's SQLite file may grow; past it its writes fail (database-full)
    /// and the other services are untouched.
    #[arg(long, default_value = "1GiB", value_parser = parse_size)]
    max_database_bytes: usize,
    /// The most heap the SQLite library may hold in all (its page caches, sorts, values).
    #[arg(long, default_value = "256MiB", value_parser = parse_size)]
    sqlite_heap_limit: usize,
}

impl BoundsArgs {
    /// The bounds, with the request timeout every statement is held to.
    fn bounds(&self, request_timeout: Duration) -> GuestBounds {
        GuestBounds {
            max_sql_bytes: self.max_sql_bytes,
            max_value_bytes: self.max_value_bytes,
            max_result_rows: self.max_result_rows as usize,
            max_result_bytes: self.max_result_bytes,
            max_database_bytes: self.max_database_bytes as u64,
            sqlite_heap_limit: self.sqlite_heap_limit as u64,
            request_timeout,
        }
    }
}

/// Where a running host's admin API is; shared by the commands that talk to it.
#[derive(clap::Args)]
struct AdminArgs {
    /// The host's admin address.
    #[arg(long, default_value = "http://127.0.0.1:3001")]
    admin: String,
    /// The file holding the admin token (default: SHOP_ADMIN_TOKEN).
    #[arg(long, value_name = "PATH")]
    token_file: Option<PathBuf>,
}

impl AppArgs {
    fn options(self) -> app::AppOptions {
        app::AppOptions {
            manifest: self.manifest,
            runtime_config: self.runtime_config,
            database_url: self.database_url,
            postgres_pool_size: self.postgres_pool_size,
            postgres_acquire_timeout: self.postgres_acquire_timeout,
            migrate: true,
            limits: engine::Limits::default(),
        }
    }
}

#[derive(Subcommand)]
// Parsed once at start: the size of `Up`'s many flags costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
enum Command {
    /// Serve the app's HTTP triggers.
    Up {
        #[command(flatten)]
        app: AppArgs,
        /// The address to listen on (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:3000")]
        listen: String,
        /// Build the components first, as `shop build` does.
        #[arg(long)]
        build: bool,
        /// How long one request may run (its guest is stopped then, and the answer is a 504):
        /// `10s`, `500ms`, `2m`.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        request_timeout: Duration,
        /// The most linear memory one component instance may use (past it the request fails
        /// with a 503): `64MiB`, `512KiB`, `1GiB` or bytes.
        #[arg(long, default_value = "64MiB", value_parser = parse_size)]
        max_memory: usize,
        /// How long a client may take to send a request's head (line and headers), the first on
        /// its connection or the next on a kept-alive one: so also how long a connection may
        /// stay idle. The host then closes it.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        header_read_timeout: Duration,
        /// The largest request head the host reads (a bigger one is answered 431), and the most
        /// any connection buffers: `64KiB`, at least `8KiB`.
        #[arg(long, default_value = "64KiB", value_parser = parse_head_size)]
        max_header_size: usize,
        /// The most client connections open at once; past it a new one is answered 503 and
        /// closed. Keep it under the open-files limit (`ulimit -n`).
        #[arg(long, default_value_t = admission::DEFAULT_MAX_CONNECTIONS,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_connections: u32,
        /// The most requests running in guests at once (each holds a guest instance); past it a
        /// request is answered 503 at once, with `Retry-After: 1`.
        #[arg(long, default_value_t = engine::DEFAULT_MAX_CONCURRENT_REQUESTS,
              value_parser = clap::value_parser!(u32)
                  .range(1..=i64::from(engine::MAX_CONCURRENT_REQUESTS)))]
        max_concurrent_requests: u32,
        /// The most of them hashing a password (login, register: 19 MiB each) at once; the
        /// others wait up to 5s for their turn, then are answered 503.
        #[arg(long, default_value_t = admission::default_max_concurrent_hashing(),
              value_parser = clap::value_parser!(u32).range(1..))]
        max_concurrent_hashing: u32,
        /// How long a client may take to send a request's body after its head (then 408 and the
        /// connection closes). The body is read whole before the request takes a slot.
        #[arg(long, default_value = "5s", value_parser = parse_duration)]
        body_read_timeout: std::time::Duration,
        /// The most memory all request bodies read and not yet done with may hold at once
        /// (past it a request is answered 503): `64MiB`.
        #[arg(long, default_value = "64MiB", value_parser = parse_size)]
        max_body_buffer: usize,
        /// The most connections one client address (an IPv6 /64) may hold open; past it a new
        /// one is answered 429 and closed. A trusted proxy's connections are not counted.
        #[arg(long, default_value_t = per_client::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_connections_per_client: u32,
        /// The most requests of one client address in guests at once; its others wait their
        /// turn up to 5s, then are answered 429.
        #[arg(long, default_value_t = per_client::DEFAULT_MAX_REQUESTS_PER_CLIENT,
              value_parser = clap::value_parser!(u32).range(1..))]
        max_requests_per_client: u32,
        /// How many accounts one client address may register a minute (a burst of as many at
        /// once); past it `POST /api/accounts/register/` is answered 429.
        #[arg(long, default_value_t = per_client::DEFAULT_REGISTRATIONS_PER_MINUTE,
              value_parser = clap::value_parser!(u32).range(1..))]
        registrations_per_client: u32,
        /// The proxies whose `X-Forwarded-For` names the client (comma-separated addresses or
        /// blocks, e.g. `10.0.0.0/8`); without it the header is ignored and the client is the
        /// connection's peer. The services throttle logins by that address.
        #[arg(long, value_name = "ADDRS", value_parser = client_addr::parse_blocks)]
        trusted_proxies: Option<client_addr::TrustedProxies>,
        /// The shop's public URL (`https://shop.example.com`): the pagination links start with
        /// it. Without it they are relative, unless the request's `Host` is the address the
        /// connection reached; a client's `Host` is never reflected.
        #[arg(long, value_name = "URL", env = "SHOP_PUBLIC_URL",
              value_parser = spin_headers::parse_public_url)]
        public_url: Option<String>,
        /// On SIGTERM or Ctrl-C, how long to let the requests in flight finish before exiting.
        #[arg(long, default_value = "10s", value_parser = parse_duration)]
        shutdown_timeout: Duration,
        /// Do not swap a component when its source file changes.
        #[arg(long)]
        no_watch: bool,
        /// Apply no migrations, as `spin up` does: each SQLite service then creates its schema
        /// from its embedded migrations on first use (Postgres needs `shop migrate` first).
        #[arg(long)]
        no_migrate: bool,
        /// Turn on the admin API (`/_admin/components`, on `--admin-listen`), protected by the
        /// token in this file (or in SHOP_ADMIN_TOKEN).
        #[arg(long, value_name = "PATH")]
        admin_token_file: Option<PathBuf>,
        /// Serve the admin API on its own listener here (a bare port means loopback:
        /// `3001` is `127.0.0.1:3001`); never on the public one. Needs the admin token.
        #[arg(long, value_name = "ADDR")]
        admin_listen: Option<String>,
        /// Let --admin-listen be an address other than loopback (the token then crosses that
        /// network in clear text: put a TLS proxy or a private network in front).
        #[arg(long)]
        admin_listen_public: bool,
        #[command(flatten)]
        bounds: BoundsArgs,
    },
    /// Replace a component of a running host (its admin API must be on), or with --canary
    /// start the new version beside the stable one.
    Swap {
        /// The component's id in the manifest.
        name: String,
        /// The new Wasm component.
        path: PathBuf,
        /// Send only this percentage (1 to 99) of the component's requests to the new version,
        /// after the same checks as a swap; `shop promote` or `shop rollback` ends it.
        #[arg(long, value_name = "PERCENT", value_parser = Share::parse)]
        canary: Option<Share>,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Make a component's canary its only version.
    Promote {
        /// The component's id in the manifest.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Drop a component's canary, or without one go back to the version before the current.
    Rollback {
        /// The component's id in the manifest.
        name: String,
        #[command(flatten)]
        admin: AdminArgs,
    },
    /// Run each component's build command.
    Build {
        /// The app's manifest.
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
    },
    /// Apply every service's migrations (each its own schema and role with --database-url),
    /// then exit.
    Migrate {
        #[command(flatten)]
        app: AppArgs,
        /// Print each service's own database URL (its role's login, password included) as
        /// `SPIN_VARIABLE_<SERVICE>_DATABASE=...` lines, for a deployment on Spin.
        #[arg(long)]
        print_urls: bool,
    },
    /// Precompile the app's components for this machine (the cache `shop up` then loads).
    Compile {
        /// The app's manifest.
        #[arg(long, short = 'f', default_value = "spin.toml")]
        manifest: PathBuf,
    },
    /// Make a staff user (or promote an existing one), in the database `shop up` uses.
    Createsuperuser {
        #[command(flatten)]
        app: AppArgs,
        /// The user's name (matched case-insensitively against existing users).
        #[arg(long)]
        username: String,
        /// The user's email address.
        #[arg(long)]
        email: String,
        /// The password; prefer the SHOP_SUPERUSER_PASSWORD environment variable, which
        /// keeps it out of the process list and shell history.
        #[arg(long, env = "SHOP_SUPERUSER_PASSWORD", hide_env_values = true)]
        password: String,
    },
}

fn main() -> ExitCode {
    // Error values are reported as one line each; capturing a backtrace for every error
    // (RUST_BACKTRACE=1 turns that on) would only slow the error paths down.
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return fail(&anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    // On the runtime: the span exporter, when there is one, batches on it.
    let telemetry = runtime.block_on(async { telemetry::init() });
    let outcome = runtime.block_on(async {
        match cli.command {
            Command::Up {
                app,
                listen,
                build,
                request_timeout,
                max_memory,
                header_read_timeout,
                max_header_size,
                max_connections,
                max_concurrent_requests,
                max_concurrent_hashing,
                body_read_timeout,
                max_body_buffer,
                max_connections_per_client,
                max_requests_per_client,
                registrations_per_client,
                trusted_proxies,
                public_url,
                shutdown_timeout,
                no_watch,
                no_migrate,
                admin_token_file,
                admin_listen,
                admin_listen_public,
                bounds,
            } => {
                capabilities::bounds::set(bounds.bounds(request_timeout));
                let admin_token = secrets::admin_token(admin_token_file.as_deref())?;
                let mut app = app.options();
                app.migrate = !no_migrate;
                app.limits.request_timeout = request_timeout;
                app.limits.max_memory = max_memory;
                app.limits.max_concurrent_requests = max_concurrent_requests;
                commands::up::run(commands::up::UpOptions {
                    app,
                    build,
                    listen,
                    shutdown_timeout,
                    watch: !no_watch,
                    admin_token,
                    admin_listen,
                    admin_listen_public,
                    public_url,
                    trusted_proxies: trusted_proxies.unwrap_or_default().0,
                    edge: server::Edge {
                        header_read_timeout,
                        max_header_size,
                        max_connections: max_connections as usize,
                        max_concurrent_hashing: max_concurrent_hashing as usize,
                        body_read_timeout,
                        max_body_buffer,
                        max_connections_per_client: max_connections_per_client as usize,
                        max_requests_per_client: max_requests_per_client as usize,
                        registrations_per_minute: registrations_per_client,
                    },
                })
                .await
            }
            Command::Swap {
                name,
                path,
                canary,
                admin,
            } => commands::swap::run(
                &name,
                &path,
                canary,
                &admin.admin,
                admin.token_file.as_deref(),
            ),
            Command::Promote { name, admin } => {
                commands::rollout::promote(&name, &admin.admin, admin.token_file.as_deref())
            }
            Command::Rollback { name, admin } => {
                commands::rollout::rollback(&name, &admin.admin, admin.token_file.as_deref())
            }
            Command::Migrate { app, print_urls } => {
                commands::migrate::run(&app.options(), print_urls).await
            }
            Command::Compile { manifest } => {
                let manifest = manifest::Manifest::load(&manifest)?;
                commands::compile::run(&manifest)
            }
            Command::Createsuperuser {
                app,
                username,
                email,
                password,
            } => {
                let loaded = app::load(&app.options()).await?;
                let id = createsuperuser::run(&loaded, &username, &email, &password).await?;
                println!("Superuser `{username}` is ready (id {id}).");
                Ok(())
            }
            Command::Build { manifest } => {
                let manifest = manifest::Manifest::load(&manifest)?;
                build::build_all(&manifest).await
            }
        }
    });
    runtime.block_on(telemetry.shutdown());
    // Pools and background tasks must not hold the exit back.
    runtime.shutdown_background();
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => fail(&err),
    }
}

/// Parses a duration on the command line: `10s`, `500ms`, `2m`, or seconds.
fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("`{text}` is not a duration: write e.g. 10s, 500ms or 2m"))?;
    let duration = match unit.trim() {
        "ms" => Duration::from_millis(number),
        "" | "s" => Duration::from_secs(number),
        "m" => Duration::from_secs(number * 60),
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use ms, s or m"
            ))
        }
    };
    if duration.is_zero() {
        return Err("a duration of 0 would fail every request".into());
    }
    Ok(duration)
}

/// Parses a memory size on the command line (see [`parse_size_at_least`]): at least 1 MiB.
fn parse_size(text: &str) -> Result<usize, String> {
    parse_size_at_least(text, 1 << 20)
}

/// Parses a size of at least 1 KiB.
fn parse_small_size(text: &str) -> Result<usize, String> {
    parse_size_at_least(text, 1 << 10)
}

/// Parses a request head size: at least the 8 KiB hyper's buffers start with.
fn parse_head_size(text: &str) -> Result<usize, String> {
    parse_size_at_least(text, 8 << 10)
}

/// Parses a size on the command line: `64MiB`, `512KiB`, `1GiB` (or `M`, `K`, `G`), or bytes;
/// less than `min` bytes is an error.
fn parse_size_at_least(text: &str, min: usize) -> Result<usize, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: usize = number
        .parse()
        .map_err(|_| format!("`{text}` is not a size: write e.g. 64MiB"))?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        other => {
            return Err(format!(
                "unknown unit `{other}` in `{text}`: use KiB, MiB or GiB"
            ))
        }
    };
    number
        .checked_shl(shift)
        .filter(|bytes| *bytes >> shift == number && *bytes >= min)
        .ok_or_else(|| {
            let min = if min >= 1 << 20 {
                format!("{}MiB", min >> 20)
            } else {
                format!("{}KiB", min >> 10)
            };
            format!("`{text}`: give at least {min}, and less than the address space")
        })
}

fn fail(err: &anyhow::Error) -> ExitCode {
    eprintln!("Error: {err:#}");
    ExitCode::FAILURE
}
