//! Embeds every service's SQLite migrations (`migrations/<service>/sqlite/*.sql`, the files
//! `shop up` applies with sqlx) into the guests, split into statements, with the checksum
//! sqlx records for each: a service under `spin up` creates its own schema from the same files
//! and writes the same ledger (`_sqlx_migrations`), so either runtime may migrate a database
//! the other made.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha384};

#[path = "src/sql_split.rs"]
mod sql_split;

fn main() {
    // Read when the script runs, not when it is compiled: a compiled script may be reused for
    // another checkout of the same sources (a shared target folder).
    let manifest_dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let root = Path::new(&manifest_dir).join("../../migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut services: Vec<(String, PathBuf)> = read_dir(&root)
        .into_iter()
        .filter(|path| path.join("sqlite").is_dir())
        .map(|path| (file_name(&path), path.join("sqlite")))
        .collect();
    services.sort();

    let mut out = String::from(
        "/// The embedded SQLite migrations of `service`, oldest first (none for an unknown name).\n\
         pub(crate) fn sqlite(service: &str) -> &'static [Migration] {\n    match service {\n",
    );
    for (service, dir) in &services {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut files: Vec<PathBuf> = read_dir(dir)
            .into_iter()
            .filter(|path| path.extension().is_some_and(|ext| ext == "sql"))
            .collect();
        files.sort();
        writeln!(out, "        {service:?} => &[").unwrap();
        for file in &files {
            println!("cargo:rerun-if-changed={}", file.display());
            out.push_str(&migration(file));
        }
        out.push_str("        ],\n");
    }
    out.push_str("        _ => &[],\n    }\n}\n");
    let dest = PathBuf::from(std::env::var("OUT_DIR").unwrap()).join("migrations.rs");
    std::fs::write(dest, out).unwrap();
}

/// One `Migration { .. }` literal, as sqlx reads the file: `<version>_<description>.sql`.
fn migration(file: &Path) -> String {
    let name = file_name(file);
    let stem = name.trim_end_matches(".sql");
    let (version, description) = stem
        .split_once('_')
        .unwrap_or_else(|| panic!("{}: name it <version>_<description>.sql", file.display()));
    let version: i64 = version
        .parse()
        .unwrap_or_else(|_| panic!("{}: the version must be a number", file.display()));
    if stem.ends_with(".up") || stem.ends_with(".down") {
        panic!(
            "{}: reversible migrations are not supported",
            file.display()
        );
    }
    let description = description.replace('_', " ");
    let sql = std::fs::read_to_string(file)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", file.display()));
    let statements =
        sql_split::split_statements(&sql).unwrap_or_else(|err| panic!("{}: {err}", file.display()));
    let checksum: String = Sha384::digest(sql.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02X}"))
        .collect();
    let record = format!(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
         VALUES ({version}, '{}', TRUE, X'{checksum}', -1)",
        description.replace('\'', "''")
    );
    format!(
        "            Migration {{ version: {version}, checksum: {checksum:?}, statements: &{statements:?}, record: {record:?} }},\n"
    )
}

fn read_dir(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|err| panic!("cannot read {}: {err}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .collect()
}

fn file_name(path: &Path) -> String {
    path.file_name().unwrap().to_string_lossy().into_owned()
}
