//! `shop-compose <socket.wasm> --plug <plug.wasm> [--plug ...] -o <out.wasm>`: fills the socket
//! component's imports from the plugs' exports (as `wasm-tools compose -d` does) and writes the
//! composed component. The cart build uses it to make cart-with-products.wasm for Spin.

mod compose;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context, Result};

const USAGE: &str =
    "usage: shop-compose <socket.wasm> --plug <plug.wasm> [--plug ...] -o <out.wasm>";

fn main() -> ExitCode {
    match run(std::env::args_os().skip(1)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("shop-compose: error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: impl IntoIterator<Item = OsString>) -> Result<()> {
    let Some(args) = Args::parse(args)? else {
        println!("{USAGE}");
        return Ok(());
    };
    let composition = compose::compose(&args.socket, &args.plugs)?;
    write_atomically(&args.output, &composition.bytes)?;
    let filled: Vec<&str> = composition.filled.iter().map(String::as_str).collect();
    println!(
        "Composed {} (filled {})",
        args.output.display(),
        filled.join(", ")
    );
    Ok(())
}

/// The command line.
#[derive(Debug, PartialEq)]
struct Args {
    socket: PathBuf,
    plugs: Vec<PathBuf>,
    output: PathBuf,
}

impl Args {
    /// The arguments after the program name; `None` when help was asked for.
    fn parse(args: impl IntoIterator<Item = OsString>) -> Result<Option<Self>> {
        let mut socket = None;
        let mut plugs = Vec::new();
        let mut output = None;
        let mut args = args.into_iter();
        while let Some(arg) = args.next() {
            let mut value = |flag: &str| {
                args.next()
                    .map(PathBuf::from)
                    .with_context(|| format!("{flag} needs a file; {USAGE}"))
            };
            match arg.to_str() {
                Some("-h" | "--help") => return Ok(None),
                Some("-p" | "--plug") => plugs.push(value("--plug")?),
                Some("-o" | "--output") => output = Some(value("-o")?),
                Some(flag) if flag.starts_with('-') => bail!("unknown option `{flag}`; {USAGE}"),
                _ if socket.is_none() => socket = Some(PathBuf::from(arg)),
                _ => bail!("more than one socket component given; {USAGE}"),
            }
        }
        let socket = socket.with_context(|| format!("no socket component given; {USAGE}"))?;
        if plugs.is_empty() {
            bail!("no --plug given; {USAGE}");
        }
        let output = output.with_context(|| format!("no -o <out.wasm> given; {USAGE}"))?;
        Ok(Some(Self {
            socket,
            plugs,
            output,
        }))
    }
}

/// Writes `bytes` to a temporary file next to `path`, then renames it over `path`: a reader (or
/// a build interrupted halfway) never sees a partial component.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path
        .file_name()
        .with_context(|| format!("output `{}` is not a file name", path.display()))?;
    let mut temporary = OsString::from(".");
    temporary.push(name);
    temporary.push(format!(".{}.tmp", std::process::id()));
    let temporary = path.with_file_name(temporary);
    let written = std::fs::write(&temporary, bytes)
        .and_then(|()| std::fs::rename(&temporary, path))
        .with_context(|| format!("cannot write `{}`", path.display()));
    if written.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Option<Args>> {
        Args::parse(args.iter().map(OsString::from))
    }

    #[test]
    fn the_socket_plugs_and_output_are_read_in_any_order() {
        let args = parse(&[
            "-o",
            "out.wasm",
            "cart.wasm",
            "--plug",
            "a.wasm",
            "-p",
            "b.wasm",
        ]);
        assert_eq!(
            args.unwrap().unwrap(),
            Args {
                socket: "cart.wasm".into(),
                plugs: vec!["a.wasm".into(), "b.wasm".into()],
                output: "out.wasm".into(),
            }
        );
    }

    #[test]
    fn a_command_line_without_plug_or_output_is_an_error() {
        let no_plug = parse(&["cart.wasm", "-o", "out.wasm"]).unwrap_err();
        assert!(
            no_plug.to_string().starts_with("no --plug given"),
            "{no_plug}"
        );
        let no_output = parse(&["cart.wasm", "--plug", "a.wasm"]).unwrap_err();
        assert!(no_output.to_string().starts_with("no -o"), "{no_output}");
        let dangling = parse(&["cart.wasm", "--plug"]).unwrap_err();
        assert!(
            dangling.to_string().starts_with("--plug needs a file"),
            "{dangling}"
        );
    }

    #[test]
    fn the_output_replaces_an_older_file_and_leaves_no_temporary() {
        let dir = std::env::temp_dir().join(format!("shop-compose-write-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("out.wasm");
        std::fs::write(&out, b"old").unwrap();

        write_atomically(&out, b"new").unwrap();

        assert_eq!(std::fs::read(&out).unwrap(), b"new");
        let left: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
        assert_eq!(left.len(), 1, "{left:?}");
        std::fs::remove_dir_all(dir).unwrap();
    }
}
