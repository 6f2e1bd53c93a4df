use std::path::{Path, PathBuf};

use envship_spec::{EnvFileError, EnvironmentFile};

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/envs")
}

/// Renders a diagnostic the way the CLI does, without colours, with paths made relative.
fn render(err: &EnvFileError) -> String {
    let mut out = String::new();
    miette::GraphicalReportHandler::new_themed(miette::GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false)
        .render_report(&mut out, err)
        .unwrap();
    out
}

#[test]
fn every_fixture_env_file_parses() {
    let mut count = 0;
    for entry in fs_err::read_dir(data_dir()).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().and_then(|e| e.to_str()) != Some("yml") {
            continue;
        }
        count += 1;
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let result = EnvironmentFile::from_path(&path);
        if name == "slac-lcls__relmanage__env_create_py2.yml" {
            let err = result.expect_err("the template token must be refused");
            assert!(
                matches!(err, EnvFileError::TemplateToken { ref token, .. } if token == "PYTHONVER"),
                "{err:?}"
            );
            continue;
        }
        let file = result.unwrap_or_else(|e| panic!("{name}: {}", render(&e)));
        assert!(
            !file.dependencies.is_empty() || !file.pip.is_empty(),
            "{name} has no dependencies"
        );
        // rattler's reading and ours agree on the dependency count.
        assert_eq!(
            file.yaml.match_specs().count(),
            file.dependencies.len(),
            "{name}"
        );
        assert_eq!(
            file.yaml.pip_specs().map(|p| p.len()).unwrap_or(0),
            file.pip.len(),
            "{name}"
        );
    }
    assert_eq!(count, 12, "all fixture environment files were read");
}

#[test]
fn fixture_features_are_understood() {
    // nodefaults, chan::pkg and variables with absolute paths.
    let pcds =
        EnvironmentFile::from_path(&data_dir().join("pcdshub__pcds-envs__envs_pcds_env.yml"))
            .unwrap();
    assert!(pcds.dependencies.len() > 50);
    let with_prefix: Vec<_> = fs_err::read_dir(data_dir())
        .unwrap()
        .filter_map(|e| {
            let p = e.unwrap().path();
            let f = EnvironmentFile::from_path(&p).ok()?;
            Some((p, f))
        })
        .collect();
    assert!(
        with_prefix.iter().any(|(_, f)| f.nodefaults()),
        "some file uses nodefaults"
    );
    assert!(
        with_prefix.iter().any(|(_, f)| !f.variables.is_empty()),
        "some file has variables"
    );
    assert!(
        with_prefix
            .iter()
            .any(|(_, f)| f.dependencies.iter().any(|d| d.spec.channel.is_some())),
        "some file uses chan::pkg"
    );
    assert!(
        with_prefix
            .iter()
            .any(|(_, f)| f.warnings.iter().any(|w| w.message.contains("prefix"))),
        "some file has an ignored prefix:"
    );
}

#[test]
fn template_token_report() {
    let path = data_dir().join("slac-lcls__relmanage__env_create_py2.yml");
    let err = EnvironmentFile::from_path(&path).unwrap_err();
    let text = render(&err).replace(&data_dir().display().to_string(), "[DATA]");
    insta::assert_snapshot!(text);
}

#[test]
fn bad_spec_report() {
    let text = "name: demo\nchannels:\n  - conda-forge\ndependencies:\n  - python=3.11\n  - numpy >=>1.20\n  - pip:\n    - psutil\n";
    let err = EnvironmentFile::from_str_with_path(text, Path::new("environment.yml")).unwrap_err();
    insta::assert_snapshot!(render(&err));
}

#[test]
fn wrong_shape_report() {
    let text = "name: demo\ndependencies: python\n";
    let err = EnvironmentFile::from_str_with_path(text, Path::new("environment.yml")).unwrap_err();
    insta::assert_snapshot!(render(&err));
}

#[test]
fn yaml_syntax_report() {
    let text = "name: demo\ndependencies:\n  - python\n   - numpy: [\n";
    let err = EnvironmentFile::from_str_with_path(text, Path::new("environment.yml")).unwrap_err();
    insta::assert_snapshot!(render(&err));
}
