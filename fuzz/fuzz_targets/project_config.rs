//! `envship.toml`, a project's and a workspace root's: any text gives a config or an error, never
//! a panic; a `[workspace]` table's globs are then matched against a fixed set of member
//! directories (the tree walk is the file system's, not a parser's).
#![no_main]
use std::path::Path;

use envship_spec::{
    workspace::{select_members, Member, Workspace},
    ProjectConfig,
};
use libfuzzer_sys::fuzz_target;

const DIRS: &[&str] = &[
    "envs/ana",
    "envs/old-ana",
    "envs/psana",
    "group/sub/env",
    "tools/psana",
];

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let path = Path::new("envship.toml");
    let config = match ProjectConfig::parse(text, path) {
        Ok(c) => c,
        Err(e) => return drop(e.to_string()),
    };
    let targets = config.target_list();
    assert_eq!(config.default_target(), targets.first().map(String::as_str));
    let Some(table) = &config.workspace else {
        return;
    };
    let dirs: Vec<String> = DIRS.iter().map(|d| d.to_string()).collect();
    let names = match select_members(path, &dirs, &table.members, &table.exclude) {
        Ok(n) => n,
        Err(e) => return drop(e.to_string()),
    };
    assert!(names.iter().all(|n| DIRS.contains(&n.as_str())));
    let ws = Workspace {
        root: "/ws".into(),
        config_path: path.to_path_buf(),
        members: names
            .into_iter()
            .map(|name| Member {
                dir: Path::new("/ws").join(&name),
                name,
                targets: targets.clone(),
            })
            .collect(),
    };
    // The member filter of `ship --all --members GLOB` takes the same globs.
    for g in table.exclude.iter().chain(&table.members).take(4) {
        if let Err(e) = ws.pairs(Some(g), &targets) {
            drop(e.to_string());
        }
    }
});
