//! Takes Swagger UI's script, style sheet and icon out of the release that
//! `utoipa-swagger-ui-vendored` packages, into OUT_DIR, for `include_bytes!`.

use std::io::{Cursor, Read};
use std::path::Path;

/// The files the docs page serves, by their names in the release's `dist/` folder.
const ASSETS: [&str; 3] = [
    "swagger-ui-bundle.js",
    "swagger-ui.css",
    "favicon-32x32.png",
];

fn main() {
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    let archive = Cursor::new(utoipa_swagger_ui_vendored::SWAGGER_UI_VENDORED);
    let mut archive = zip::ZipArchive::new(archive).expect("the vendored Swagger UI is a zip");
    for asset in ASSETS {
        let name = (0..archive.len())
            .filter_map(|index| archive.name_for_index(index).and_then(Result::ok))
            .map(|name| name.into_owned())
            .find(|name| name.ends_with(&format!("/dist/{asset}")))
            .unwrap_or_else(|| panic!("the vendored Swagger UI has no dist/{asset}"));
        let mut file = archive.by_name(&name).expect("listed just now");
        let mut bytes = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
        file.read_to_end(&mut bytes)
            .unwrap_or_else(|err| panic!("unpacking {name}: {err}"));
        std::fs::write(Path::new(&out_dir).join(asset), bytes)
            .unwrap_or_else(|err| panic!("writing {asset} to OUT_DIR: {err}"));
    }
    println!("cargo::rerun-if-changed=build.rs");
}
