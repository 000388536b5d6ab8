//! The behaviour contract is in the repository: every `SPEC §<n>` cited in
//! the code, the tests, the examples and the README names a section of
//! `docs/behaviour.md`.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The section numbers of the contract's headings (`## 3. ...`, `### 3.1 ...`).
fn sections() -> BTreeSet<String> {
    let text =
        std::fs::read_to_string(root().join("docs/behaviour.md")).expect("docs/behaviour.md");
    text.lines()
        .filter_map(|line| {
            let heading = line
                .strip_prefix("## ")
                .or_else(|| line.strip_prefix("### "))?;
            let number = heading.split_whitespace().next()?.trim_end_matches('.');
            number
                .split('.')
                .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
                .then(|| number.to_owned())
        })
        .collect()
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, out);
        } else if path
            .extension()
            .is_some_and(|e| e == "rs" || e == "lua" || e == "md" || e == "html" || e == "js")
        {
            out.push(path);
        }
    }
}

#[test]
fn every_spec_citation_names_a_section_of_the_contract() {
    let sections = sections();
    assert!(
        sections.contains("3.2") && sections.contains("4"),
        "{sections:?}"
    );
    let mut paths = vec![root().join("README.md")];
    for dir in [
        "src",
        "tests",
        "examples",
        "benches/src",
        "benches/benches",
        "docs",
    ] {
        files(&root().join(dir), &mut paths);
    }
    let mut cited = 0;
    for path in paths {
        let text = std::fs::read_to_string(&path).unwrap();
        for (at, _) in text.match_indices("SPEC §") {
            let number: String = text[at + "SPEC §".len()..]
                .chars()
                .take_while(|c| c.is_ascii_digit() || *c == '.')
                .collect();
            let number = number.trim_end_matches('.');
            if number.is_empty() {
                // This very test's prose ("SPEC §<n>").
                continue;
            }
            cited += 1;
            assert!(
                sections.contains(number),
                "{} cites SPEC §{number}, which docs/behaviour.md does not have",
                path.display()
            );
        }
    }
    assert!(
        cited > 50,
        "the code cites the contract ({cited} citations found)"
    );
}
