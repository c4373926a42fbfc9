//! The checkout saga cut at each of its steps: another writer holds the database of the step
//! (orders' claim or order, products' reservation, cart's clear) past the request's deadline,
//! so the request dies there with a 504. Within the checkout expiry the stock is whole again:
//! for every product, stock + units held by live orders = stock put in, no reservation without
//! an order remains, and the cart still makes at most one order.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::helpers::{
    build_components, fresh_user_id, fresh_workdir, host_command, repo_root, serve_on, user_token,
    Engine, TestApp,
};
use crate::orders::{place, product, units_held};

/// The request deadline of these hosts, and the checkout expiry they are given.
const DEADLINE: &str = "2s";
const EXPIRY_SECONDS: u64 = 3;
/// How long the other writer holds its lock: past the deadline.
const LOCK_SECONDS: f64 = 3.5;

struct CutHost {
    app: TestApp,
    workdir: std::path::PathBuf,
    admin_url: Option<String>,
}

fn start(engine: Engine) -> Option<CutHost> {
    build_components();
    let workdir = fresh_workdir("cuts");
    let mut cmd = host_command(&workdir);
    cmd.env(
        "SPIN_VARIABLE_CHECKOUT_EXPIRY_SECONDS",
        EXPIRY_SECONDS.to_string(),
    )
    .args(["up", "--listen", "127.0.0.1:0", "--no-watch"])
    .args(["--request-timeout", DEADLINE]);
    let manifest = repo_root().join("spin.toml");
    let (app, admin_url) = serve_on(engine, cmd, &workdir, &manifest, &[])?;
    Some(CutHost {
        app,
        workdir,
        admin_url,
    })
}

/// Another writer that holds `target` (a SQLite service's file, or a Postgres table) for
/// [`LOCK_SECONDS`]; returns once the lock is held.
fn hold_lock(host: &CutHost, target: &str) -> Child {
    let mut child = match &host.admin_url {
        None => {
            let file = host.workdir.join(format!(".shop/{target}.db"));
            Command::new("python3")
                .arg("-c")
                .arg(format!(
                    "import sqlite3, sys, time\n\
                     c = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)\n\
                     c.execute('BEGIN IMMEDIATE')\n\
                     print('locked', flush=True)\n\
                     time.sleep({LOCK_SECONDS})\n\
                     c.execute('ROLLBACK')"
                ))
                .arg(&file)
                .stdout(Stdio::piped())
                .spawn()
                .unwrap()
        }
        Some(url) => Command::new("psql")
            .arg(url)
            .args(["-qAt", "-v", "ON_ERROR_STOP=1"])
            .args(["-c", "BEGIN"])
            .args(["-c", &format!("LOCK TABLE {target} IN EXCLUSIVE MODE")])
            .args(["-c", "SELECT 'locked'"])
            .args(["-c", &format!("SELECT pg_sleep({LOCK_SECONDS})")])
            .args(["-c", "COMMIT"])
            .stdout(Stdio::piped())
            .spawn()
            .unwrap(),
    };
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "locked", "the lock on {target} was not taken");
    child
}

/// Cuts one checkout at the step `target` holds, then checks the invariant after the expiry.
async fn cut_at(host: &CutHost, target: &str) {
    let app = &host.app;
    let (id, _) = product(app, "3.00", 10).await;
    let token = user_token(fresh_user_id());
    app.add_to_cart(&token, id, 3).await;

    let mut locker = hold_lock(host, target);
    let cut = place(app, &token, None).await;
    assert!(
        matches!(cut.status, 503 | 504),
        "cut at {target}: expected the deadline's answer, got {} {:?}",
        cut.status,
        cut.body
    );
    assert!(locker.wait().unwrap().success());
    tokio::time::sleep(Duration::from_secs(EXPIRY_SECONDS) + Duration::from_millis(700)).await;

    // The next look at the orders settles what the dead request left.
    let mine = app.get("/api/orders/", Some(&token)).await;
    assert_eq!(mine.status, 200, "{:?}", mine.body);
    let orders = mine.body["count"].as_i64().unwrap();
    assert!(orders <= 1, "cut at {target}: {orders} orders");
    let stock = app.stock_of(id).await;
    assert_eq!(
        stock + units_held(app, id).await,
        10,
        "cut at {target}: stock {stock} + units held by orders must be the 10 put in"
    );
    assert_eq!(
        stock,
        10 - 3 * orders,
        "cut at {target}: a reservation outlived its checkout"
    );

    // The cart still makes at most one order: again if the cut one made none, else none.
    let again = place(app, &token, None).await;
    if orders == 0 {
        assert_eq!(again.status, 201, "cut at {target}: {:?}", again.body);
        assert_eq!(app.stock_of(id).await, 7);
    } else {
        assert_eq!(again.status, 400, "cut at {target}: {:?}", again.body);
        assert_eq!(again.body["detail"], "Your cart is empty.");
        assert_eq!(app.stock_of(id).await, 7);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_cut_at_any_step_on_sqlite_leaves_the_stock_whole() {
    let host = start(Engine::Sqlite).unwrap();
    // The claim (orders), the reservation (products), the clearing of the cart (cart).
    for target in ["orders", "products", "cart"] {
        cut_at(&host, target).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkout_cut_at_any_step_on_postgres_leaves_the_stock_whole() {
    let Some(host) = start(Engine::Postgres) else {
        return;
    };
    // The claim, the reservation, the order (after the stock was taken), the cart's clearing.
    for target in [
        "orders.checkouts",
        "products.products",
        "orders.orders",
        "cart.cart_items",
    ] {
        cut_at(&host, target).await;
    }
}
