//! The crate's boundary: it is a general cluster layer, so none of its
//! sources may speak of what tickshard puts in the partitions (ticks,
//! symbols). The build already keeps it from importing tickshard; this keeps
//! the words out too.

use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn no_source_mentions_ticks_or_symbols() {
    let mut files = Vec::new();
    sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut files,
    );
    assert!(files.len() > 10, "sources found: {files:?}");
    let mut offending = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read source");
        for (n, line) in text.lines().enumerate() {
            // tokio's timer API says "tick" for an interval's beat.
            let line = line
                .to_lowercase()
                .replace(".tick()", "")
                .replace("set_missed_tick_behavior", "");
            let words = line.split(|c: char| !c.is_ascii_alphanumeric());
            if words
                .into_iter()
                .any(|w| matches!(w, "tick" | "ticks" | "symbol" | "symbols"))
            {
                offending.push(format!("{}:{}: {}", file.display(), n + 1, line.trim()));
            }
        }
    }
    assert!(offending.is_empty(), "{offending:#?}");
}
