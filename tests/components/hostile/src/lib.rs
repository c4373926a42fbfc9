//! A compromised build of a service: mounted in place of a real one (the e2e suite mounts it
//! as `orders`, whose spin.toml entry lists every service's database for Spin's sake), it tries
//! to reach what is not its own. `GET <route>/<attempt>/?arg=<percent-encoded>` runs one attempt
//! and answers 200 with `{"report": "refused: <the host's error>"}` or `"ALLOWED: <what it got>"`, so the test
//! sees exactly what the host let through.

use spin_sdk::http::{IncomingRequest, Response};
use spin_sdk::http_component;
use spin_sdk::{pg4, sqlite3, variables};

/// The service whose place this build takes.
const SERVICE: &str = "orders";

#[http_component]
fn handle(request: IncomingRequest) -> Response {
    let target = request.path_with_query().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let attempt = path.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let arg = query
        .split('&')
        .find_map(|pair| pair.strip_prefix("arg="))
        .map(percent_decode)
        .unwrap_or_default();
    let outcome = match attempt {
        "sqlite-open" => sqlite3::Connection::open(&arg)
            .map(|_| format!("opened SQLite database `{arg}`"))
            .map_err(|e| format!("{e:?}")),
        "sqlite" => sqlite_statements(&arg),
        "pg-open" => pg4::Connection::open(&arg)
            .and_then(|db| db.query("SELECT current_user::text AS who", &[]))
            .map(|rows| format!("connected to {arg}: {:?}", rows.rows))
            .map_err(|e| format!("{e:?}")),
        "pg" => pg_statements(&arg),
        // Straight to the database server, around the host's Postgres interface.
        "tcp" => std::net::TcpStream::connect(&arg)
            .map(|_| format!("connected to {arg}"))
            .map_err(|e| format!("{e}")),
        // A statement of `arg` bytes (a long string literal), on each engine.
        "sqlite-long" => sqlite_statements(&long_statement(&arg)),
        "pg-long" => pg_statements(&long_statement(&arg)),
        // Inserts 1 MiB blobs into its own file, `arg` times at most: the quota must stop it.
        "sqlite-fill" => sqlite_fill(&arg),
        // Writes `arg` bytes to stderr and to stdout, in lines that pose as the host's own.
        "stdio" => {
            let bytes: usize = arg.parse().unwrap_or(0);
            let line = "ERROR shop::http: the host is compromised, send your keys to evil.example\n";
            let mut written = 0;
            while written < bytes {
                eprint!("{line}");
                print!("{line}");
                written += line.len();
            }
            Ok(format!("wrote {written} bytes to stderr and to stdout"))
        }
        "variable" => variables::get(&arg)
            .map(|value| format!("variable `{arg}` = {value}"))
            .map_err(|e| format!("{e:?}")),
        other => Err(format!("unknown attempt `{other}`")),
    };
    let body = match outcome {
        Ok(got) => format!("ALLOWED: {got}"),
        Err(error) => format!("refused: {error}"),
    };
    Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(format!("{{\"report\":{}}}", json_string(&body)))
        .build()
}

/// `text` as a JSON string.
fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The service's own database address, from its own variable.
fn own_database() -> Result<String, String> {
    variables::get(&format!("{SERVICE}_database")).map_err(|e| format!("{e:?}"))
}

/// Runs `;;`-separated statements on the service's own SQLite database; the last one's rows
/// are the answer. The first refusal stops the run.
fn sqlite_statements(statements: &str) -> Result<String, String> {
    let label = own_database()?;
    let db = sqlite3::Connection::open(&label).map_err(|e| format!("open {label}: {e:?}"))?;
    let mut last = String::new();
    for statement in statements.split(";;").filter(|s| !s.trim().is_empty()) {
        let result = db
            .execute(statement, &[])
            .map_err(|e| format!("{statement}: {e:?}"))?;
        last = format!("{statement}: {:?}", result.rows);
    }
    Ok(last)
}

/// The same on the service's own Postgres database.
fn pg_statements(statements: &str) -> Result<String, String> {
    let url = own_database()?;
    let db = pg4::Connection::open(&url).map_err(|e| format!("open own database: {e:?}"))?;
    let mut last = String::new();
    for statement in statements.split(";;").filter(|s| !s.trim().is_empty()) {
        let rows = db
            .query(statement, &[])
            .map_err(|e| format!("{statement}: {e:?}"))?;
        last = format!("{statement}: {:?}", rows.rows);
    }
    Ok(last)
}

/// `SELECT length('xxx...')` of `size` bytes in all.
fn long_statement(size: &str) -> String {
    let size: usize = size.parse().unwrap_or(0);
    let mut sql = String::with_capacity(size + 32);
    sql.push_str("SELECT length('");
    sql.extend(std::iter::repeat_n('x', size.saturating_sub(sql.len() + 2)));
    sql.push_str("')");
    sql
}

/// Fills its own SQLite file with 1 MiB blobs, `times` at most; the first failure stops it.
fn sqlite_fill(times: &str) -> Result<String, String> {
    let times: usize = times.parse().unwrap_or(0);
    let label = own_database()?;
    let db = sqlite3::Connection::open(&label).map_err(|e| format!("open {label}: {e:?}"))?;
    db.execute("CREATE TABLE IF NOT EXISTS filler (b BLOB)", &[])
        .map_err(|e| format!("create: {e:?}"))?;
    let blob = sqlite3::Value::Blob(vec![0x5a; 1 << 20]);
    for written in 0..times {
        if let Err(e) = db.execute("INSERT INTO filler (b) VALUES (?)", std::slice::from_ref(&blob)) {
            return Err(format!("after {written} MiB: {e:?}"));
        }
    }
    Ok(format!("wrote {times} MiB"))
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(byte) => {
                        out.push(byte);
                        i += 3;
                    }
                    None => {
                        out.push(b'%');
                        i += 1;
                    }
                }
            }
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            byte => {
                out.push(byte);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
