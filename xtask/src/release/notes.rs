//! Release notes from the commit history, sorted into sections by the rules of
//! `release-tools/release-notes.toml` (what each rule means is written there).

use std::fmt::Write as _;

use anyhow::Context as _;
use serde::Deserialize;
use xshell::{Shell, cmd};

pub const RULES_FILE: &str = "release-tools/release-notes.toml";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rules {
    pub tag_pattern: String,
    #[serde(default)]
    pub skip_subjects: Vec<String>,
    #[serde(rename = "section")]
    pub sections: Vec<Section>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Section {
    pub title: String,
    #[serde(default)]
    pub areas: Vec<String>,
    #[serde(default)]
    pub body: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub hash: String,
    pub subject: String,
    pub body: String,
}

impl Rules {
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let rules: Rules = toml::from_str(text)?;
        for s in &rules.sections {
            anyhow::ensure!(
                !s.areas.is_empty() || !s.body.is_empty(),
                "section {:?} has neither areas nor body rules",
                s.title
            );
        }
        Ok(rules)
    }

    /// The index of the section `commit` belongs to, `None` for "Other changes".
    fn section_of(&self, commit: &Commit) -> Option<usize> {
        let area = area(&commit.subject).to_ascii_lowercase();
        self.sections.iter().position(|s| {
            s.areas
                .iter()
                .any(|a| !area.is_empty() && area.starts_with(&a.to_ascii_lowercase()))
                || commit.body.lines().any(|line| {
                    s.body
                        .iter()
                        .any(|prefix| line.trim_start().starts_with(prefix.as_str()))
                })
        })
    }
}

/// The first word of the subject's text before its first `": "`; empty when it has none.
fn area(subject: &str) -> &str {
    match subject.split_once(": ") {
        Some((area, _)) => area
            .split([' ', ',', '\''])
            .next()
            .unwrap_or_default()
            .trim(),
        None => "",
    }
}

/// The notes' markdown: a title, where the changes start, then one list per non-empty section
/// (in the rules' order, "Other changes" last), newest commit first.
pub fn render(rules: &Rules, version: &str, since: Option<&str>, commits: &[Commit]) -> String {
    let mut sections: Vec<Vec<&Commit>> = vec![Vec::new(); rules.sections.len() + 1];
    let mut listed = 0;
    for c in commits {
        if rules
            .skip_subjects
            .iter()
            .any(|s| c.subject.starts_with(s.as_str()))
        {
            continue;
        }
        listed += 1;
        let i = rules.section_of(c).unwrap_or(rules.sections.len());
        sections[i].push(c);
    }
    let mut out = format!("# csi-sidecars {version}\n\n");
    let _ = writeln!(
        out,
        "{listed} change{} since {}.",
        if listed == 1 { "" } else { "s" },
        since.unwrap_or("the start of the project")
    );
    for (i, commits) in sections.iter().enumerate() {
        if commits.is_empty() {
            continue;
        }
        let title = rules
            .sections
            .get(i)
            .map_or("Other changes", |s| s.title.as_str());
        let _ = writeln!(out, "\n## {title}\n");
        for c in commits {
            let short = &c.hash[..c.hash.len().min(12)];
            let _ = writeln!(out, "- {} ({short})", c.subject.trim());
        }
    }
    out
}

/// The previous release tag (`None`: there is none) and the commits after it up to HEAD,
/// newest first.
pub fn history(
    sh: &Shell,
    rules: &Rules,
    own_tag: &str,
) -> anyhow::Result<(Option<String>, Vec<Commit>)> {
    let pattern = &rules.tag_pattern;
    let since = cmd!(
        sh,
        "git describe --tags --abbrev=0 --match {pattern} --exclude {own_tag} HEAD"
    )
    .quiet()
    .ignore_stderr()
    .read()
    .ok()
    .filter(|t| !t.is_empty());
    let range = match &since {
        Some(tag) => format!("{tag}..HEAD"),
        None => "HEAD".to_string(),
    };
    let log = cmd!(
        sh,
        "git log --no-merges --format=%H%x1f%s%x1f%b%x1e {range}"
    )
    .quiet()
    .read()
    .context("git log")?;
    Ok((since, parse_log(&log)))
}

/// Parses `git log --format=%H%x1f%s%x1f%b%x1e`.
fn parse_log(log: &str) -> Vec<Commit> {
    log.split('\x1e')
        .filter_map(|record| {
            let mut fields = record.trim_start_matches('\n').splitn(3, '\x1f');
            let hash = fields.next()?.trim();
            if hash.is_empty() {
                return None;
            }
            Some(Commit {
                hash: hash.to_string(),
                subject: fields.next().unwrap_or_default().to_string(),
                body: fields.next().unwrap_or_default().trim().to_string(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn commit(hash: &str, subject: &str, body: &str) -> Commit {
        Commit {
            hash: hash.to_string(),
            subject: subject.to_string(),
            body: body.to_string(),
        }
    }

    fn rules() -> Rules {
        let path = crate::project_root().join(RULES_FILE);
        Rules::parse(&std::fs::read_to_string(path).unwrap()).unwrap()
    }

    #[test]
    fn the_projects_rules_sort_real_subjects() {
        let r = rules();
        let title = |subject: &str, body: &str| {
            r.section_of(&commit("0", subject, body))
                .map_or("Other changes", |i| r.sections[i].title.as_str())
        };
        assert_eq!(
            title("external-provisioner: clone a source PVC", ""),
            "Sidecars and controllers"
        );
        assert_eq!(
            title("csi-sidecars' global flags from one table: x", ""),
            "csi-sidecars (all in one)"
        );
        assert_eq!(title("csi-kube caches: trim", ""), "Shared libraries");
        assert_eq!(
            title("README, go.work.md: bench numbers", ""),
            "Release, deployment and documentation"
        );
        assert_eq!(title("e2e migration: GCE PD", ""), "Tests and tooling");
        assert_eq!(title("Runtime: supervisor", ""), "Shared libraries");
        assert_eq!(title("Fix a typo", ""), "Other changes");
        assert_eq!(
            title(
                "external-resizer: drop --old-flag",
                "why\nAction required: remove it"
            ),
            "Action required"
        );
    }

    #[test]
    fn render_groups_skips_and_counts() {
        let r = rules();
        let commits = [
            commit("aaaaaaaaaaaaaaaa", "e2e: more cases", ""),
            commit("bbbbbbbbbbbbbbbb", "fixup! e2e: more cases", ""),
            commit("cccccccccccccccc", "external-attacher: detach faster", ""),
            commit("dddddddddddddddd", "A loose subject", ""),
            commit("eeeeeeeeeeeeeeee", "external-attacher: rename", "text"),
        ];
        let notes = render(&r, "v1.0.0", Some("v0.9.0"), &commits);
        assert_eq!(
            notes,
            "# csi-sidecars v1.0.0\n\n4 changes since v0.9.0.\n\n\
             ## Sidecars and controllers\n\n\
             - external-attacher: detach faster (cccccccccccc)\n\
             - external-attacher: rename (eeeeeeeeeeee)\n\n\
             ## Tests and tooling\n\n- e2e: more cases (aaaaaaaaaaaa)\n\n\
             ## Other changes\n\n- A loose subject (dddddddddddd)\n"
        );
    }

    #[test]
    fn log_parsing() {
        let log = "h1\x1fsubject one\x1fbody\nline\n\x1e\nh2\x1fsubject: two\x1f\x1e\n";
        assert_eq!(
            parse_log(log),
            [
                commit("h1", "subject one", "body\nline"),
                commit("h2", "subject: two", "")
            ]
        );
    }

    #[test]
    fn a_section_without_rules_is_refused() {
        let err = Rules::parse("tag_pattern = \"v*\"\n[[section]]\ntitle = \"x\"\n").unwrap_err();
        assert!(err.to_string().contains("neither areas nor body"), "{err}");
    }
}
