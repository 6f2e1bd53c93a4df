//! `environment.yml` with conda's semantics and precise error locations.
//!
//! The meaning of the file comes from rattler's [`EnvironmentYaml`] and [`MatchSpec`] (the
//! same parser pixi and rattler-build use). rattler keeps no positions, so the file is read a
//! second time with `marked-yaml`, which records where every node starts; every entry we keep
//! carries its span so that errors found later (a bad spec, an unsatisfiable request, a pip
//! entry the target refuses) can point at the exact line and column.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use indexmap::IndexMap;
use marked_yaml::Node;
use miette::{NamedSource, SourceSpan};
use rattler_conda_types::{
    EnvironmentYaml, MatchSpec, NamedChannelOrUrl, ParseMatchSpecError, ParseStrictness,
};
use serde::Serialize;

mod locate;

use locate::{yaml_error, LineIndex};

/// The source text of an environment file, shared by every diagnostic that points into it.
pub type EnvSource = Arc<NamedSource<String>>;

/// Where an entry sits in the file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub struct Location {
    /// 1-based line.
    pub line: usize,
    /// 1-based column.
    pub column: usize,
    /// Byte offset and length in the file, for diagnostics.
    #[serde(skip)]
    pub span: (usize, usize),
}

impl Location {
    /// The span for a miette label.
    pub fn source_span(&self) -> SourceSpan {
        SourceSpan::new(self.span.0.into(), self.span.1)
    }
}

/// One conda dependency of the file.
#[derive(Clone, Debug)]
pub struct CondaDependency {
    /// As written.
    pub raw: String,
    /// As conda understands it.
    pub spec: MatchSpec,
    /// Where it is written.
    pub location: Location,
}

/// One entry of the `pip:` list.
#[derive(Clone, Debug, Serialize)]
pub struct PipDependency {
    /// As written (a requirement, URL, path or pip option such as `--index-url`).
    pub raw: String,
    /// Where it is written.
    pub location: Location,
}

/// One channel of the file.
#[derive(Clone, Debug)]
pub struct ChannelEntry {
    /// As written.
    pub raw: String,
    /// Where it is written.
    pub location: Location,
}

/// Something that does not stop envship but that the user should know.
#[derive(Clone, Debug, Serialize)]
pub struct EnvFileWarning {
    /// What is wrong.
    pub message: String,
    /// Where, when known.
    pub location: Option<Location>,
}

/// A parsed and validated `environment.yml`.
#[derive(Clone, Debug)]
pub struct EnvironmentFile {
    /// The file it was read from.
    pub path: PathBuf,
    /// Its text, for diagnostics.
    pub source: EnvSource,
    /// rattler's view of the file.
    pub yaml: EnvironmentYaml,
    /// `name:`, if present.
    pub name: Option<String>,
    /// `channels:` in order, including the `nodefaults` marker.
    pub channels: Vec<ChannelEntry>,
    /// Conda dependencies in order.
    pub dependencies: Vec<CondaDependency>,
    /// The `pip:` subsection in order.
    pub pip: Vec<PipDependency>,
    /// `variables:` in order.
    pub variables: IndexMap<String, String>,
    /// Non-fatal findings (ignored `prefix:`, unknown keys, …).
    pub warnings: Vec<EnvFileWarning>,
}

/// Errors reading an environment file. Each points at the offending place in the file.
#[derive(Debug, thiserror::Error, miette::Diagnostic)]
pub enum EnvFileError {
    /// The file named does not exist.
    #[error("environment file {} does not exist", path.display())]
    #[diagnostic(
        code(envship::env_file::missing),
        help("check the path given with -f (without -f, envship reads environment.yml in the project directory)")
    )]
    Missing {
        /// The path as given.
        path: PathBuf,
    },

    /// The file exists but could not be read.
    #[error("cannot read environment file {}", path.display())]
    #[diagnostic(
        code(envship::env_file::read),
        help("the environment file must be a readable UTF-8 text file")
    )]
    Read {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The text is not valid YAML.
    #[error("{} is not valid YAML: {message}", path.display())]
    #[diagnostic(code(envship::env_file::yaml))]
    Yaml {
        /// The path.
        path: PathBuf,
        /// The parser's words.
        message: String,
        /// The text.
        #[source_code]
        src: EnvSource,
        /// Where the parser stopped, or where the construct it could not finish starts.
        #[label("{label}")]
        at: SourceSpan,
        /// What is at `at`.
        label: String,
    },

    /// A key has a value of the wrong kind.
    #[error("`{key}` must be {expected}")]
    #[diagnostic(code(envship::env_file::shape), help("{help}"))]
    Shape {
        /// The key.
        key: String,
        /// What it must be.
        expected: &'static str,
        /// Advice.
        help: String,
        /// The text.
        #[source_code]
        src: EnvSource,
        /// Where.
        #[label("{expected} expected")]
        at: SourceSpan,
    },

    /// A dependency is not a valid conda match spec.
    #[error("invalid dependency `{raw}`")]
    #[diagnostic(
        code(envship::env_file::bad_spec),
        help("conda specs look like `numpy`, `numpy=1.26`, `numpy>=1.20,<2`, `numpy=1.26=py311*` or `conda-forge::numpy`")
    )]
    BadSpec {
        /// As written.
        raw: String,
        /// rattler's reason.
        #[source]
        source: ParseMatchSpecError,
        /// The text.
        #[source_code]
        src: EnvSource,
        /// Where.
        #[label("not a valid match spec")]
        at: SourceSpan,
    },

    /// More than one dependency is invalid: each is reported with its place.
    #[error("{count} dependencies are invalid")]
    #[diagnostic(
        code(envship::env_file::bad_specs),
        help("conda specs look like `numpy`, `numpy=1.26`, `numpy>=1.20,<2`, `numpy=1.26=py311*` or `conda-forge::numpy`")
    )]
    BadSpecs {
        /// How many.
        count: usize,
        /// One error per invalid dependency, in file order.
        #[related]
        each: Vec<InvalidDependency>,
    },

    /// A dependency still holds a template placeholder instead of a version.
    #[error("dependency `{raw}` contains the unfilled template token `{token}`")]
    #[diagnostic(
        code(envship::env_file::template_token),
        help("this file looks like a template: replace `{token}` with a real version (e.g. `python=3.9`) or generate the file first")
    )]
    TemplateToken {
        /// As written.
        raw: String,
        /// The placeholder.
        token: String,
        /// The text.
        #[source_code]
        src: EnvSource,
        /// Where.
        #[label("`{token}` is not a version")]
        at: SourceSpan,
    },

    /// A channel cannot be understood.
    #[error("invalid channel `{raw}`: {reason}")]
    #[diagnostic(
        code(envship::env_file::bad_channel),
        help("channels are names (`conda-forge`), URLs (`https://…`, `file:///…`) or paths")
    )]
    BadChannel {
        /// As written.
        raw: String,
        /// Why.
        reason: String,
        /// The text.
        #[source_code]
        src: EnvSource,
        /// Where.
        #[label("here")]
        at: SourceSpan,
    },
}

/// One of several invalid dependencies ([`EnvFileError::BadSpecs`]): its error, less the advice
/// on match spec syntax that the group gives once.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct InvalidDependency(pub EnvFileError);

impl miette::Diagnostic for InvalidDependency {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.code()
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        match self.0 {
            EnvFileError::BadSpec { .. } => None,
            _ => self.0.help(),
        }
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code()
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        self.0.labels()
    }
}

impl EnvironmentFile {
    /// Read and validate a file.
    pub fn from_path(path: &Path) -> Result<Self, EnvFileError> {
        let text = fs_err::read_to_string(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::NotFound {
                EnvFileError::Missing {
                    path: path.to_path_buf(),
                }
            } else {
                EnvFileError::Read {
                    path: path.to_path_buf(),
                    source,
                }
            }
        })?;
        Self::from_str_with_path(&text, path)
    }

    /// Validate text that came from `path` (used in messages only).
    pub fn from_str_with_path(text: &str, path: &Path) -> Result<Self, EnvFileError> {
        let source: EnvSource = Arc::new(
            NamedSource::new(path.display().to_string(), text.to_string()).with_language("yaml"),
        );
        let index = LineIndex::new(text);
        let root =
            marked_yaml::parse_yaml(0, text).map_err(|e| yaml_error(&e, path, &source, &index))?;
        let root = root.as_mapping().ok_or_else(|| EnvFileError::Shape {
            key: "the file".into(),
            expected: "a mapping",
            help:
                "an environment file starts with keys like `name:`, `channels:` and `dependencies:`"
                    .into(),
            src: source.clone(),
            at: index.location(root.span(), None).source_span(),
        })?;

        let mut name = None;
        let mut channels = Vec::new();
        let mut entries = Entries::default();
        let mut variables = IndexMap::new();

        for (key, value) in root.iter() {
            let key_loc = index.location(key.span(), Some(key.as_str()));
            match key.as_str() {
                "name" => {
                    name = Some(scalar(value, "name", &source, &index)?.to_string());
                }
                "prefix" => entries.warnings.push(EnvFileWarning {
                    message:
                        "`prefix:` is ignored: envship builds into its own prefix (see --prefix)"
                            .into(),
                    location: Some(key_loc),
                }),
                "channels" => {
                    for node in sequence(value, "channels", &source, &index)? {
                        let raw = scalar(node, "channels", &source, &index)?;
                        let loc = index.location(node.span(), Some(raw));
                        if raw != "nodefaults" {
                            raw.parse::<NamedChannelOrUrl>().map_err(|e| {
                                EnvFileError::BadChannel {
                                    raw: raw.to_string(),
                                    reason: e.to_string(),
                                    src: source.clone(),
                                    at: loc.source_span(),
                                }
                            })?;
                        }
                        channels.push(ChannelEntry {
                            raw: raw.to_string(),
                            location: loc,
                        });
                    }
                }
                "dependencies" => read_dependencies(value, &source, &index, &mut entries)?,
                "variables" => {
                    let map = value.as_mapping().ok_or_else(|| EnvFileError::Shape {
                        key: "variables".into(),
                        expected: "a mapping",
                        help: "write variables as `NAME: value` lines".into(),
                        src: source.clone(),
                        at: index.location(value.span(), None).source_span(),
                    })?;
                    for (k, v) in map.iter() {
                        let v = scalar(v, "variables", &source, &index)?;
                        variables.insert(k.as_str().to_string(), v.to_string());
                    }
                }
                other => entries.warnings.push(EnvFileWarning {
                    message: format!("unknown key `{other}` is ignored"),
                    location: Some(key_loc),
                }),
            }
        }

        let mut bad = std::mem::take(&mut entries.bad);
        if bad.len() > 1 {
            return Err(EnvFileError::BadSpecs {
                count: bad.len(),
                each: bad.into_iter().map(InvalidDependency).collect(),
            });
        }
        if let Some(e) = bad.pop() {
            return Err(e);
        }

        // rattler's reading of the same text is the reference for the semantics; every entry
        // was validated above, so a failure here means the two readers disagree.
        let yaml = EnvironmentYaml::from_yaml_str(text).map_err(|e| EnvFileError::Yaml {
            path: path.to_path_buf(),
            message: e.to_string(),
            src: source.clone(),
            at: e
                .location()
                .map(|l| {
                    index
                        .location_at(l.line(), l.column() + 1, None)
                        .source_span()
                })
                .unwrap_or_else(|| SourceSpan::new(0.into(), 0)),
            label: "here".into(),
        })?;

        Ok(Self {
            path: path.to_path_buf(),
            source,
            yaml,
            name,
            channels,
            dependencies: entries.dependencies,
            pip: entries.pip,
            variables,
            warnings: entries.warnings,
        })
    }

    /// The directory the file is in (relative channel paths and the project root hang off it).
    pub fn dir(&self) -> PathBuf {
        self.path
            .parent()
            .map(|p| {
                if p.as_os_str().is_empty() {
                    Path::new(".")
                } else {
                    p
                }
            })
            .unwrap_or(Path::new("."))
            .to_path_buf()
    }

    /// Whether the channel list contains `nodefaults`.
    pub fn nodefaults(&self) -> bool {
        self.channels.iter().any(|c| c.raw == "nodefaults")
    }

    /// The location of the dependency on `name`, for diagnostics found after parsing.
    pub fn dependency_named(&self, name: &str) -> Option<&CondaDependency> {
        self.dependencies.iter().find(|d| {
            d.spec
                .name
                .as_exact()
                .is_some_and(|n| n.as_normalized() == name)
        })
    }
}

/// What the `dependencies:` list holds, and what is wrong with it so far.
#[derive(Default)]
struct Entries {
    dependencies: Vec<CondaDependency>,
    pip: Vec<PipDependency>,
    warnings: Vec<EnvFileWarning>,
    /// Every invalid conda spec, to report them all at once.
    bad: Vec<EnvFileError>,
}

/// The `dependencies:` list: conda specs (each invalid one is kept in `entries.bad`, and the
/// rest read on) and the `pip:` subsection.
fn read_dependencies(
    value: &Node,
    source: &EnvSource,
    index: &LineIndex<'_>,
    entries: &mut Entries,
) -> Result<(), EnvFileError> {
    for node in sequence(value, "dependencies", source, index)? {
        match node {
            Node::Scalar(s) => {
                let raw = s.as_str();
                let loc = index.location(node.span(), Some(raw));
                match parse_dependency(raw, loc, source) {
                    Ok(dep) => entries.dependencies.push(dep),
                    Err(e) => entries.bad.push(e),
                }
            }
            Node::Mapping(m) => {
                for (sub, list) in m.iter() {
                    if sub.as_str() != "pip" {
                        entries.warnings.push(EnvFileWarning {
                            message: format!(
                                "subsection `{}:` is ignored: only `pip:` is supported (as in conda)",
                                sub.as_str()
                            ),
                            location: Some(index.location(sub.span(), Some(sub.as_str()))),
                        });
                        continue;
                    }
                    for entry in sequence(list, "pip", source, index)? {
                        let raw = scalar(entry, "pip", source, index)?;
                        entries.pip.push(PipDependency {
                            raw: raw.to_string(),
                            location: index.location(entry.span(), Some(raw)),
                        });
                    }
                }
            }
            Node::Sequence(_) => {
                return Err(EnvFileError::Shape {
                    key: "dependencies".into(),
                    expected: "a spec or a `pip:` list",
                    help: "write each dependency as `- name=version`".into(),
                    src: source.clone(),
                    at: index.location(node.span(), None).source_span(),
                })
            }
        }
    }
    Ok(())
}

fn parse_dependency(
    raw: &str,
    location: Location,
    source: &EnvSource,
) -> Result<CondaDependency, EnvFileError> {
    let spec =
        MatchSpec::from_str(raw, ParseStrictness::Lenient).map_err(|e| EnvFileError::BadSpec {
            raw: raw.to_string(),
            source: e,
            src: source.clone(),
            at: location.source_span(),
        })?;
    if let Some(token) = template_token(raw, &spec) {
        return Err(EnvFileError::TemplateToken {
            raw: raw.to_string(),
            token,
            src: source.clone(),
            at: location.source_span(),
        });
    }
    Ok(CondaDependency {
        raw: raw.to_string(),
        spec,
        location,
    })
}

/// A version with no digit at all (`PYTHONVER`, `{{ python }}`, `@VER@`, `$VERSION`) is a
/// placeholder someone forgot to fill in: conda would accept it and the solve would fail with a
/// confusing "nothing provides" message, so it is refused here with its name.
fn template_token(raw: &str, spec: &MatchSpec) -> Option<String> {
    let version = spec.version.as_ref()?.to_string();
    let has_digit = version.bytes().any(|b| b.is_ascii_digit());
    let only_wild = version
        .chars()
        .all(|c| matches!(c, '*' | '.' | ' ' | ',' | '|' | '=' | '<' | '>' | '!'));
    if has_digit || only_wild {
        return None;
    }
    // Report the token as written, not as conda normalized it (lowercase).
    let lower = version
        .trim_matches(|c: char| !c.is_alphanumeric() && c != '_')
        .to_lowercase();
    raw.split(|c: char| {
        !(c.is_alphanumeric() || c == '_' || c == '{' || c == '}' || c == '$' || c == '@')
    })
    .find(|part| {
        let core = part.trim_matches(|c: char| !c.is_alphanumeric() && c != '_');
        !core.is_empty() && core.to_lowercase() == lower
    })
    .map(str::to_string)
    .or(Some(version))
}

fn sequence<'a>(
    node: &'a Node,
    key: &str,
    source: &EnvSource,
    index: &LineIndex<'_>,
) -> Result<&'a [Node], EnvFileError> {
    match node {
        Node::Sequence(s) => Ok(s.as_slice()),
        // `channels:` with nothing after it is an empty list in conda.
        Node::Scalar(s) if s.as_str().is_empty() || s.as_str() == "~" || s.as_str() == "null" => {
            Ok(&[])
        }
        _ => Err(EnvFileError::Shape {
            key: key.to_string(),
            expected: "a list",
            help: format!("write `{key}:` followed by `- item` lines"),
            src: source.clone(),
            at: index.location(node.span(), None).source_span(),
        }),
    }
}

fn scalar<'a>(
    node: &'a Node,
    key: &str,
    source: &EnvSource,
    index: &LineIndex<'_>,
) -> Result<&'a str, EnvFileError> {
    node.as_scalar()
        .map(|s| s.as_str())
        .ok_or_else(|| EnvFileError::Shape {
            key: key.to_string(),
            expected: "a string",
            help: format!("each `{key}` entry is a single string"),
            src: source.clone(),
            at: index.location(node.span(), None).source_span(),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<EnvironmentFile, EnvFileError> {
        EnvironmentFile::from_str_with_path(text, Path::new("environment.yml"))
    }

    #[test]
    fn reads_all_sections() {
        let f = parse(
            "name: demo\nprefix: /opt/x\nchannels:\n  - conda-forge\n  - nodefaults\ndependencies:\n  - python=3.11\n  - numpy >=1.20,<2\n  - conda-forge::zlib 1.2.*\n  - pip\n  - pip:\n    - psutil==6.1.1\n    - \"markupsafe\"\nvariables:\n  FOO: bar\n",
        )
        .expect("parses");
        assert_eq!(f.name.as_deref(), Some("demo"));
        assert!(f.nodefaults());
        assert_eq!(f.dependencies.len(), 4);
        assert_eq!(f.dependencies[1].location.line, 8);
        assert_eq!(f.dependencies[1].location.column, 5);
        assert_eq!(f.pip.len(), 2);
        assert_eq!(f.pip[1].raw, "markupsafe");
        assert_eq!(f.pip[1].location.column, 8);
        assert_eq!(f.variables["FOO"], "bar");
        assert_eq!(f.warnings.len(), 1, "{:?}", f.warnings);
        assert_eq!(f.yaml.match_specs().count(), 4);
    }

    #[test]
    fn bad_spec_points_at_entry() {
        let e = parse("dependencies:\n  - numpy\n  - python>=>3\n").expect_err("bad");
        match &e {
            EnvFileError::BadSpec { raw, at, .. } => {
                assert_eq!(raw, "python>=>3");
                assert_eq!(at.offset(), "dependencies:\n  - numpy\n  - ".len());
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn template_token_is_named() {
        let e = parse("dependencies:\n  - python=PYTHONVER\n").expect_err("template");
        assert!(e.to_string().contains("`PYTHONVER`"), "{e}");
    }

    #[test]
    fn glob_versions_are_not_templates() {
        parse("dependencies:\n  - python=3.*\n  - numpy=*\n  - openssl=1.1.1*=h*\n")
            .expect("valid");
    }

    #[test]
    fn every_bad_spec_is_collected() {
        let e =
            parse("dependencies:\n  - python>=>3\n  - numpy\n  - zlib >=<1\n").expect_err("bad");
        match &e {
            EnvFileError::BadSpecs { count, each } => {
                assert_eq!(*count, 2);
                assert!(
                    matches!(&each[0].0, EnvFileError::BadSpec { raw, .. } if raw == "python>=>3")
                );
                assert!(
                    matches!(&each[1].0, EnvFileError::BadSpec { raw, .. } if raw == "zlib >=<1")
                );
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn syntax_error_at_the_end_points_at_the_unfinished_construct() {
        let text = "dependencies:\n  - numpy\n  - python: [3.9\n  - pip\n";
        match parse(text).expect_err("yaml") {
            EnvFileError::Yaml { at, label, .. } => {
                assert_eq!(at.offset(), text.find('[').expect("a ["), "{label}");
                assert_eq!(at.len(), "[3.9".len());
                assert!(label.contains("never closed"), "{label}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn syntax_error_has_location() {
        let e = parse("dependencies:\n  - a\n - b: [\n").expect_err("yaml");
        assert!(matches!(e, EnvFileError::Yaml { .. }), "{e:?}");
    }
}
