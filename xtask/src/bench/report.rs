//! report.md, report.json and the PNG charts.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use super::{
    ConfigInfo, ExpandResult, ProvisionResult, RunResult, ScaleKind, ScaleResult, Settings,
};

/// The markers of the generated section of README.md.
pub const README_START: &str = "<!-- bench:start -->";
pub const README_END: &str = "<!-- bench:end -->";

#[derive(Debug, Serialize)]
pub struct Binary {
    pub side: String,
    pub name: String,
    pub bytes: u64,
}

impl Binary {
    pub fn new(side: &str, name: &str, path: &Path) -> anyhow::Result<Self> {
        Ok(Binary {
            side: side.into(),
            name: name.into(),
            bytes: std::fs::metadata(path)?.len(),
        })
    }
}

/// Median, min and max over the runs.
#[derive(Debug, Clone, Copy, Serialize, Default)]
pub struct Stat {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Stat {
    fn of(values: &[f64]) -> Stat {
        if values.is_empty() {
            return Stat::default();
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[v.len() - 1],
        }
    }

    fn show(&self, unit: &str, decimals: usize) -> String {
        if (self.max - self.min).abs() < f64::EPSILON {
            format!("{:.*}{unit}", decimals, self.median)
        } else {
            format!(
                "{:.*}{unit} ({:.*}–{:.*})",
                decimals, self.median, decimals, self.min, decimals, self.max
            )
        }
    }
}

/// One configuration's figures over its runs.
#[derive(Debug, Serialize)]
pub struct Summary {
    pub key: String,
    /// Per process: idle and peak RSS (MiB), CPU seconds.
    pub processes: BTreeMap<String, [Stat; 3]>,
    pub idle_rss_mib: Stat,
    pub peak_rss_mib: Stat,
    pub cpu_s: Stat,
    pub attach_total_s: Stat,
    pub attach_p50_ms: Stat,
    pub attach_p99_ms: Stat,
    pub detach_total_s: Stat,
    pub detach_p50_ms: Stat,
    pub detach_p99_ms: Stat,
    pub requests: Stat,
    pub watches: Stat,
    pub distinct_watches: Stat,
    pub by_verb_resource: BTreeMap<String, Stat>,
    pub user_agents: Vec<String>,
    /// The provisioning workload, when every run of the configuration had it.
    pub provision: Option<ProvisionSummary>,
    /// The expansion workload, when every run of the configuration had it.
    pub expand: Option<ExpandSummary>,
}

/// The provisioning workload of one configuration, over its runs.
#[derive(Debug, Serialize)]
pub struct ProvisionSummary {
    /// Claim created -> Bound: the last one, p50, p99.
    pub all_bound_s: Stat,
    pub bound_p50_ms: Stat,
    pub bound_p99_ms: Stat,
    /// Claim deleted -> its volume gone: the last one.
    pub all_deleted_s: Stat,
    pub requests_per_claim: Stat,
    pub cpu_s: Stat,
}

fn summarize_provision(runs: &[&RunResult]) -> Option<ProvisionSummary> {
    let provisions: Vec<&ProvisionResult> = runs
        .iter()
        .map(|r| r.provision.as_ref())
        .collect::<Option<_>>()?;
    if provisions.is_empty() {
        return None;
    }
    let f = |g: &dyn Fn(&ProvisionResult) -> f64| -> Stat {
        Stat::of(&provisions.iter().map(|p| g(p)).collect::<Vec<_>>())
    };
    Some(ProvisionSummary {
        all_bound_s: f(&|p| p.bound.total_s),
        bound_p50_ms: f(&|p| p.bound.quantile_ms(0.5)),
        bound_p99_ms: f(&|p| p.bound.quantile_ms(0.99)),
        all_deleted_s: f(&|p| p.deleted.total_s),
        requests_per_claim: f(&|p| p.requests_per_claim()),
        cpu_s: f(&|p| p.cpu_s),
    })
}

/// The expansion workload of one configuration, over its runs.
#[derive(Debug, Serialize)]
pub struct ExpandSummary {
    /// Claims expanded per run.
    pub n: usize,
    /// Request raised -> volume and claim at the new capacity: the last one, p50, p99.
    pub all_done_s: Stat,
    pub done_p50_ms: Stat,
    pub done_p99_ms: Stat,
    pub requests_per_expansion: Stat,
    pub cpu_s: Stat,
    /// The sum of the processes' peak RSS while expanding, MiB.
    pub peak_rss_mib: Stat,
}

fn summarize_expand(runs: &[&RunResult]) -> Option<ExpandSummary> {
    let expansions: Vec<&ExpandResult> = runs
        .iter()
        .map(|r| r.expand.as_ref())
        .collect::<Option<_>>()?;
    let n = expansions.first()?.n;
    let f = |g: &dyn Fn(&ExpandResult) -> f64| -> Stat {
        Stat::of(&expansions.iter().map(|e| g(e)).collect::<Vec<_>>())
    };
    Some(ExpandSummary {
        n,
        all_done_s: f(&|e| e.done.total_s),
        done_p50_ms: f(&|e| e.done.quantile_ms(0.5)),
        done_p99_ms: f(&|e| e.done.quantile_ms(0.99)),
        requests_per_expansion: f(&|e| e.requests_per_expansion()),
        cpu_s: f(&|e| e.cpu_s),
        peak_rss_mib: f(&|e| e.peak_rss_kib as f64 / 1024.0),
    })
}

fn summarize(key: &str, runs: &[&RunResult]) -> Summary {
    let f = |g: &dyn Fn(&RunResult) -> f64| -> Stat {
        Stat::of(&runs.iter().map(|r| g(r)).collect::<Vec<_>>())
    };
    let mib = |kib: u64| kib as f64 / 1024.0;
    let mut processes = BTreeMap::new();
    if let Some(first) = runs.first() {
        for (i, p) in first.processes.iter().enumerate() {
            processes.insert(
                p.name.clone(),
                [
                    f(&|r| mib(r.processes[i].idle_rss_kib)),
                    f(&|r| mib(r.processes[i].peak_rss_kib)),
                    f(&|r| r.processes[i].cpu_s),
                ],
            );
        }
    }
    let mut keys: Vec<String> = runs
        .iter()
        .flat_map(|r| r.api.by_verb_resource.keys().cloned())
        .collect();
    keys.sort();
    keys.dedup();
    let by_verb_resource = keys
        .into_iter()
        .map(|k| {
            let stat = f(&|r| *r.api.by_verb_resource.get(&k).unwrap_or(&0) as f64);
            (k, stat)
        })
        .collect();
    let mut user_agents: Vec<String> = runs
        .iter()
        .flat_map(|r| r.api.user_agents.iter().cloned())
        .collect();
    user_agents.sort();
    user_agents.dedup();
    Summary {
        key: key.into(),
        processes,
        idle_rss_mib: f(&|r| mib(r.processes.iter().map(|p| p.idle_rss_kib).sum())),
        peak_rss_mib: f(&|r| mib(r.processes.iter().map(|p| p.peak_rss_kib).sum())),
        cpu_s: f(&|r| r.processes.iter().map(|p| p.cpu_s).sum()),
        attach_total_s: f(&|r| r.attach.total_s),
        attach_p50_ms: f(&|r| r.attach.quantile_ms(0.5)),
        attach_p99_ms: f(&|r| r.attach.quantile_ms(0.99)),
        detach_total_s: f(&|r| r.detach.total_s),
        detach_p50_ms: f(&|r| r.detach.quantile_ms(0.5)),
        detach_p99_ms: f(&|r| r.detach.quantile_ms(0.99)),
        requests: f(&|r| r.api.total as f64),
        watches: f(&|r| r.api.watches as f64),
        distinct_watches: f(&|r| r.api.watched.len() as f64),
        by_verb_resource,
        user_agents,
        provision: summarize_provision(runs),
        expand: summarize_expand(runs),
    }
}

/// One configuration's idle RSS with one number of scale objects present, over the runs.
#[derive(Debug, Serialize)]
pub struct ScaleSummary {
    pub key: String,
    /// Scale PVs, and as many PVCs, created by the bench.
    pub count: usize,
    /// Objects of each kind in the cluster (everyone's).
    pub in_cluster: BTreeMap<ScaleKind, Stat>,
    /// Per process, MiB.
    pub processes: BTreeMap<String, Stat>,
    /// Per process, the objects of the kinds it caches.
    pub process_cached: BTreeMap<String, Stat>,
    pub sum_mib: Stat,
    /// The objects of the kinds any process of the configuration caches.
    pub cached: Stat,
}

fn summarize_scale(results: &[ScaleResult]) -> Vec<ScaleSummary> {
    let mut keys: Vec<(usize, &str)> = Vec::new();
    for r in results {
        if !keys.contains(&(r.count, r.config.as_str())) {
            keys.push((r.count, r.config.as_str()));
        }
    }
    keys.into_iter()
        .map(|(count, key)| {
            let runs: Vec<&ScaleResult> = results
                .iter()
                .filter(|r| r.count == count && r.config == key)
                .collect();
            let f = |g: &dyn Fn(&ScaleResult) -> f64| -> Stat {
                Stat::of(&runs.iter().map(|r| g(r)).collect::<Vec<_>>())
            };
            let mut processes = BTreeMap::new();
            let mut process_cached = BTreeMap::new();
            for (i, p) in runs[0].processes.iter().enumerate() {
                processes.insert(
                    p.name.clone(),
                    f(&|r| r.processes[i].idle_rss_kib as f64 / 1024.0),
                );
                process_cached.insert(p.name.clone(), f(&|r| r.processes[i].cached as f64));
            }
            let in_cluster = ScaleKind::ALL
                .iter()
                .map(|k| {
                    let stat = f(&|r| r.in_cluster.get(k).copied().unwrap_or(0) as f64);
                    (*k, stat)
                })
                .collect();
            ScaleSummary {
                key: key.to_string(),
                count,
                in_cluster,
                processes,
                process_cached,
                sum_mib: f(&|r| {
                    r.processes.iter().map(|p| p.idle_rss_kib).sum::<u64>() as f64 / 1024.0
                }),
                cached: f(&|r| r.cached as f64),
            }
        })
        .collect()
}

/// KiB of idle RSS per cached object: the least-squares slope of idle RSS against the number
/// of objects cached, over the scale points (medians); `None` with fewer than two distinct
/// object counts.
pub fn kib_per_object(points: &[(f64, f64)]) -> Option<f64> {
    let n = points.len() as f64;
    let mean_x = points.iter().map(|p| p.0).sum::<f64>() / n;
    let mean_y = points.iter().map(|p| p.1).sum::<f64>() / n;
    let sxx: f64 = points.iter().map(|p| (p.0 - mean_x).powi(2)).sum();
    let sxy: f64 = points.iter().map(|p| (p.0 - mean_x) * (p.1 - mean_y)).sum();
    (points.len() >= 2 && sxx > 0.0).then(|| sxy / sxx)
}

/// One KiB-per-cached-object figure: a process, or a configuration's sum (`process` `None`).
#[derive(Debug, Serialize)]
pub struct PerObject {
    pub key: String,
    pub process: Option<String>,
    pub kib_per_object: f64,
}

#[derive(Debug, Serialize)]
pub struct Report {
    pub timestamp: String,
    pub machine: Machine,
    pub settings: Settings,
    /// The binaries of the bench's sidecars (its rows), in order.
    pub sidecars: Vec<String>,
    pub configurations: Vec<ConfigInfo>,
    pub not_run: Vec<String>,
    pub summaries: Vec<Summary>,
    pub scale: Vec<ScaleSummary>,
    /// KiB per cached object, per process and per configuration.
    pub per_object: Vec<PerObject>,
    pub binaries: Vec<Binary>,
    /// Why the Go configuration has no figure for a workload (`attach`, `provision`,
    /// `expand`): its Go sidecar is not in it.
    pub go_absent: BTreeMap<String, String>,
    pub runs: Vec<RunResult>,
    pub scale_runs: Vec<ScaleResult>,
    pub wall_s: f64,
}

#[derive(Debug, Serialize)]
pub struct Machine {
    pub cores: usize,
    pub memory_gib: f64,
    pub cpu: String,
}

impl Machine {
    fn here() -> Machine {
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let kib: f64 = meminfo
            .lines()
            .find(|l| l.starts_with("MemTotal:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0);
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu = cpuinfo
            .lines()
            .find(|l| l.starts_with("model name"))
            .and_then(|l| l.split_once(':'))
            .map(|(_, v)| v.trim().to_string())
            .unwrap_or_default();
        Machine {
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            memory_gib: kib / (1024.0 * 1024.0),
            cpu,
        }
    }
}

impl Report {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        timestamp: String,
        settings: Settings,
        sidecars: Vec<String>,
        configurations: Vec<ConfigInfo>,
        runs: Vec<RunResult>,
        scale_runs: Vec<ScaleResult>,
        binaries: Vec<Binary>,
        mut not_run: Vec<String>,
        go_absent: BTreeMap<String, String>,
        wall_s: f64,
    ) -> Report {
        let summaries = if runs.is_empty() {
            Vec::new()
        } else {
            configurations
                .iter()
                .map(|c| {
                    let of: Vec<&RunResult> = runs.iter().filter(|r| r.config == c.key).collect();
                    summarize(&c.key, &of)
                })
                .collect()
        };
        if settings.scale_only {
            not_run.push("the attach/detach workload (--scale-only)".into());
        }
        let scale = summarize_scale(&scale_runs);
        let per_object = per_object(&configurations, &scale);
        Report {
            timestamp,
            machine: Machine::here(),
            settings,
            sidecars,
            configurations,
            not_run,
            summaries,
            scale,
            per_object,
            binaries,
            go_absent,
            runs,
            scale_runs,
            wall_s,
        }
    }

    fn scale_of(&self, key: &str, count: usize) -> Option<&ScaleSummary> {
        self.scale.iter().find(|s| s.key == key && s.count == count)
    }

    fn per_object_of(&self, key: &str, process: Option<&str>) -> Option<f64> {
        self.per_object
            .iter()
            .find(|p| p.key == key && p.process.as_deref() == process)
            .map(|p| p.kib_per_object)
    }

    /// The object counts measured, ascending.
    pub fn scale_counts(&self) -> Vec<usize> {
        let mut v: Vec<usize> = self.scale.iter().map(|s| s.count).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// The configuration keys, in order.
    pub fn keys(&self) -> Vec<&str> {
        self.configurations.iter().map(|c| c.key.as_str()).collect()
    }

    fn summary_of(&self, key: &str) -> Option<&Summary> {
        self.summaries.iter().find(|s| s.key == key)
    }

    /// Why ours expanded claims and Go did not; `None` when Go did, or nobody did.
    fn expand_without_go(&self) -> Option<String> {
        if !self.summaries.iter().any(|s| s.expand.is_some())
            || self.summary_of("go").is_some_and(|g| g.expand.is_some())
        {
            return None;
        }
        Some(
            self.go_absent
                .get("expand")
                .cloned()
                .unwrap_or_else(|| "the Go configuration did not expand".to_string()),
        )
    }

    pub fn write(&self, dir: &Path) -> anyhow::Result<()> {
        std::fs::write(dir.join("report.json"), serde_json::to_string_pretty(self)?)?;
        let mut charts = Vec::new();
        let mut drawn = Vec::new();
        if !self.summaries.is_empty() {
            drawn.push((
                "memory.png",
                super::charts::memory(self, &dir.join("memory.png")),
            ));
            drawn.push((
                "latency.png",
                super::charts::latency(self, &dir.join("latency.png")),
            ));
        }
        if !self.scale.is_empty() {
            drawn.push((
                "scale.png",
                super::charts::scale(self, &dir.join("scale.png")),
            ));
        }
        for (file, result) in drawn {
            match result {
                Ok(()) => charts.push(format!("![{file}]({file})")),
                Err(e) => charts.push(format!("({file} not drawn: {e:#})")),
            }
        }
        std::fs::write(dir.join("report.md"), self.markdown(&charts))?;
        Ok(())
    }

    /// A few lines for the terminal.
    pub fn summary(&self) -> String {
        let mut s = String::new();
        for sum in &self.summaries {
            let _ = writeln!(
                s,
                "{:<11} idle {:>7.1} MiB  peak {:>7.1} MiB  cpu {:>6.2}s  attach {:>6.2}s (p99 {:>6.0} ms)  detach {:>6.2}s  requests {:>6.0}  watches {:>3.0}",
                sum.key,
                sum.idle_rss_mib.median,
                sum.peak_rss_mib.median,
                sum.cpu_s.median,
                sum.attach_total_s.median,
                sum.attach_p99_ms.median,
                sum.detach_total_s.median,
                sum.requests.median,
                sum.watches.median
            );
            if let Some(e) = &sum.expand {
                let _ = writeln!(
                    s,
                    "{:<11} expand {} {:>6.2}s (p50 {:.0} ms, p99 {:.0} ms)  {:.1} requests per expansion  cpu {:.2}s  peak {:.1} MiB",
                    sum.key,
                    e.n,
                    e.all_done_s.median,
                    e.done_p50_ms.median,
                    e.done_p99_ms.median,
                    e.requests_per_expansion.median,
                    e.cpu_s.median,
                    e.peak_rss_mib.median
                );
            }
        }
        if let Some(why) = self.expand_without_go() {
            let _ = writeln!(s, "expand: no Go figure: {why}");
        }
        for count in self.scale_counts() {
            let cells: Vec<String> = self
                .keys()
                .iter()
                .filter_map(|k| self.scale_of(k, count))
                .map(|s| format!("{} {:.1} MiB", s.key, s.sum_mib.median))
                .collect();
            let _ = writeln!(s, "scale {count:>5} PVs + PVCs: idle {}", cells.join(", "));
        }
        for p in self.per_object.iter().filter(|p| p.process.is_none()) {
            let _ = writeln!(
                s,
                "{:<11} {:.2} KiB per cached object",
                p.key, p.kib_per_object
            );
        }
        s
    }

    fn markdown(&self, charts: &[String]) -> String {
        let mut md = String::new();
        let st = &self.settings;
        let _ = writeln!(md, "# csi-sidecars benchmark, {}\n", self.timestamp);
        let _ = writeln!(
            md,
            "Machine: {} cores ({}), {:.1} GiB. N = {} VolumeAttachments, {} run(s) per \
             configuration, ours built with the `{}` profile. Every attacher: \
             `--kube-api-qps={} --kube-api-burst={} --worker-threads={}`, other flags at their \
             defaults. Driver: {}. Figures: median (min–max) over the runs. Wall time {:.0} s.\n",
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory_gib,
            st.n,
            st.runs,
            st.profile,
            st.qps,
            st.burst,
            st.workers,
            st.driver,
            self.wall_s
        );
        let _ = writeln!(md, "Reproduce: `{}` ({})\n", st.command, self.resolved());
        let _ = writeln!(md, "## Configurations\n");
        for c in &self.configurations {
            let _ = writeln!(md, "- **{}**: {}", c.key, c.title);
            for cmd in &c.commands {
                let _ = writeln!(md, "  - `{cmd}`");
            }
        }
        let _ = writeln!(md, "\n**Not run:**\n");
        for n in &self.not_run {
            let _ = writeln!(md, "- {n}");
        }
        if !self.summaries.is_empty() {
            self.workload_markdown(&mut md);
        }
        if !self.scale.is_empty() {
            let _ = writeln!(md, "\n## Scale: idle RSS with PVs and PVCs present\n");
            md.push_str(&self.scale_table());
            let _ = writeln!(md, "\n## KiB per cached object\n");
            md.push_str(&self.per_object_table());
        }
        self.sizes_markdown(&mut md);
        let _ = writeln!(md, "\n## Targets\n");
        for line in self.targets() {
            let _ = writeln!(md, "- {line}");
        }
        let _ = writeln!(md, "\n## Charts\n");
        for c in charts {
            let _ = writeln!(md, "{c}\n");
        }
        md
    }

    /// The options a command line resolved to.
    fn resolved(&self) -> String {
        let st = &self.settings;
        let mut parts = Vec::new();
        if !st.scale_only {
            parts.push(format!("N = {}", st.n));
        }
        parts.push(format!("{} run(s)", st.runs));
        parts.push(format!("--only {}", st.only));
        parts.push(format!("{} build of ours", st.profile));
        parts.push(format!(
            "scale with {} PVs and as many PVCs",
            st.scale_pvs
                .iter()
                .map(usize::to_string)
                .collect::<Vec<_>>()
                .join("/")
        ));
        parts.join(", ")
    }

    /// Idle RSS per configuration and object count, with ratios to Go at the same count.
    fn scale_table(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "Scale objects: N CSI PVs of the bench driver and N PVCs (unbound: each names a volume \
             that does not exist), created before the configuration starts; RSS read {} s after \
             its watches opened. \"in cluster\" counts everyone's. Per process: idle RSS \
             (ours/Go, for the Go process of the same name).\n",
            super::SETTLE.as_secs()
        );
        let first = self.scale_counts().first().copied().unwrap_or(0);
        let _ = writeln!(
            md,
            "| N | PVs / PVCs in cluster | configuration | per process | sum | sum ours/Go | sum growth over N = {first} |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|");
        for count in self.scale_counts() {
            let go = self.scale_of("go", count);
            for key in self.keys() {
                let Some(s) = self.scale_of(key, count) else {
                    continue;
                };
                let per: Vec<String> = s
                    .processes
                    .iter()
                    .map(|(name, st)| {
                        let theirs = go
                            .filter(|_| key != "go")
                            .and_then(|g| g.processes.get(name));
                        match theirs {
                            Some(g) => format!(
                                "{name} {} (×{})",
                                st.show(" MiB", 1),
                                ratio(st.median, Some(g.median))
                            ),
                            None => format!("{name} {}", st.show(" MiB", 1)),
                        }
                    })
                    .collect();
                let sum_ratio = if key == "go" {
                    "1.00".to_string()
                } else {
                    ratio(s.sum_mib.median, go.map(|g| g.sum_mib.median))
                };
                let growth = self.scale_of(key, first).map_or("–".into(), |f| {
                    format!("{:+.1} MiB", s.sum_mib.median - f.sum_mib.median)
                });
                let in_cluster: Vec<String> =
                    s.in_cluster.values().map(|st| st.show("", 0)).collect();
                let _ = writeln!(
                    md,
                    "| {count} | {} | {key} | {} | {} | {sum_ratio} | {growth} |",
                    in_cluster.join(" / "),
                    per.join(", "),
                    s.sum_mib.show(" MiB", 1),
                );
            }
        }
        md
    }

    /// KiB per cached object per process and per configuration, with Go's next to ours.
    fn per_object_table(&self) -> String {
        let mut md = String::new();
        let _ = writeln!(
            md,
            "The slope of idle RSS against the number of objects cached (least squares over the \
             N above, medians of the runs). A process caches the objects of the kinds its \
             sidecars cache; a configuration's sum is taken against the objects any of its \
             processes caches, so a type cached by two processes of one configuration counts \
             twice in its sum and once in csi-sidecars.\n"
        );
        let _ = writeln!(
            md,
            "| configuration | process | caches | KiB per cached object | ours/Go |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|");
        for p in &self.per_object {
            let caches = self
                .configurations
                .iter()
                .find(|c| c.key == p.key)
                .map(|c| {
                    let mut kinds: Vec<ScaleKind> = match &p.process {
                        Some(name) => c
                            .processes
                            .iter()
                            .position(|n| n == name)
                            .map(|i| c.caches[i].clone())
                            .unwrap_or_default(),
                        None => c.caches.iter().flatten().copied().collect(),
                    };
                    kinds.sort_unstable();
                    kinds.dedup();
                    kinds
                        .iter()
                        .map(|k| k.short())
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let go = (p.key != "go")
                .then(|| self.per_object_of("go", p.process.as_deref()))
                .flatten();
            let _ = writeln!(
                md,
                "| {} | {} | {caches} | {:.2} | {} |",
                p.key,
                p.process.as_deref().unwrap_or("sum"),
                p.kib_per_object,
                if p.key == "go" {
                    "1.00".to_string()
                } else {
                    ratio(p.kib_per_object, go)
                }
            );
        }
        md
    }

    fn workload_markdown(&self, md: &mut String) {
        let go = self.summary_of("go");
        let _ = writeln!(md, "\n## Memory and CPU per process\n");
        let _ = writeln!(
            md,
            "| configuration | process | idle RSS | peak RSS | CPU during workload | idle ours/Go | peak ours/Go | CPU ours/Go |"
        );
        let _ = writeln!(md, "|---|---|---|---|---|---|---|---|");
        for s in &self.summaries {
            for (name, [idle, peak, cpu]) in &s.processes {
                let g = go.and_then(|g| g.processes.get(name));
                let _ = writeln!(
                    md,
                    "| {} | {name} | {} | {} | {} | {} | {} | {} |",
                    s.key,
                    idle.show(" MiB", 1),
                    peak.show(" MiB", 1),
                    cpu.show(" s", 2),
                    ratio(idle.median, g.map(|g| g[0].median)),
                    ratio(peak.median, g.map(|g| g[1].median)),
                    ratio(cpu.median, g.map(|g| g[2].median)),
                );
            }
        }
        let _ = writeln!(md, "\n## Per configuration\n");
        let _ = writeln!(md, "Ratios are ours/Go.{}\n", self.go_sum_note());
        let _ = writeln!(
            md,
            "| figure | {} |",
            self.summaries
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---|".repeat(self.summaries.len()));
        type Get = fn(&Summary) -> Stat;
        let rows: [(&str, Get, &str, usize); 12] = [
            ("idle RSS, sum", |s| s.idle_rss_mib, " MiB", 1),
            ("peak RSS, sum", |s| s.peak_rss_mib, " MiB", 1),
            ("CPU seconds, sum", |s| s.cpu_s, " s", 2),
            ("attach: all done", |s| s.attach_total_s, " s", 2),
            ("attach p50", |s| s.attach_p50_ms, " ms", 0),
            ("attach p99", |s| s.attach_p99_ms, " ms", 0),
            ("detach: all gone", |s| s.detach_total_s, " s", 2),
            ("detach p50", |s| s.detach_p50_ms, " ms", 0),
            ("detach p99", |s| s.detach_p99_ms, " ms", 0),
            ("API requests", |s| s.requests, "", 0),
            ("watches opened", |s| s.watches, "", 0),
            (
                "distinct (type, selector) watched",
                |s| s.distinct_watches,
                "",
                0,
            ),
        ];
        for (label, get, unit, decimals) in rows {
            let cells: Vec<String> = self
                .summaries
                .iter()
                .map(|s| {
                    let v = get(s);
                    if s.key == "go" {
                        v.show(unit, decimals)
                    } else {
                        format!(
                            "{} (×{})",
                            v.show(unit, decimals),
                            ratio(v.median, go.map(|g| get(g).median))
                        )
                    }
                })
                .collect();
            let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
        }
        if self.summaries.iter().any(|s| s.provision.is_some()) {
            let _ = writeln!(
                md,
                "\n## Provisioning\n\nN = {} claims of an Immediate, reclaim-Delete class \
                 created at once, then deleted at once. Requests and CPU: the configuration's, \
                 while provisioning and deleting. Ratios are ours/Go.\n",
                self.settings.n
            );
            let _ = writeln!(
                md,
                "| figure | {} |",
                self.summaries
                    .iter()
                    .map(|s| s.key.as_str())
                    .collect::<Vec<_>>()
                    .join(" | ")
            );
            let _ = writeln!(md, "|---|{}", "---|".repeat(self.summaries.len()));
            type GetP = fn(&ProvisionSummary) -> Stat;
            let rows: [(&str, GetP, &str, usize); 6] = [
                ("all Bound", |p| p.all_bound_s, " s", 2),
                ("created → Bound p50", |p| p.bound_p50_ms, " ms", 0),
                ("created → Bound p99", |p| p.bound_p99_ms, " ms", 0),
                ("deleted: all volumes gone", |p| p.all_deleted_s, " s", 2),
                ("API requests per claim", |p| p.requests_per_claim, "", 1),
                ("CPU seconds", |p| p.cpu_s, " s", 2),
            ];
            let go_p = go.and_then(|g| g.provision.as_ref());
            for (label, get, unit, decimals) in rows {
                let cells: Vec<String> = self
                    .summaries
                    .iter()
                    .map(|s| match &s.provision {
                        None => "–".to_string(),
                        Some(p) if s.key == "go" => get(p).show(unit, decimals),
                        Some(p) => format!(
                            "{} (×{})",
                            get(p).show(unit, decimals),
                            ratio(get(p).median, go_p.map(|g| get(g).median))
                        ),
                    })
                    .collect();
                let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
            }
        }
        self.expand_markdown(md);
        let _ = writeln!(
            md,
            "\n## API requests by verb and resource (median per run)\n"
        );
        let mut keys: Vec<&String> = self
            .summaries
            .iter()
            .flat_map(|s| s.by_verb_resource.keys())
            .collect();
        keys.sort();
        keys.dedup();
        let _ = writeln!(
            md,
            "| request | {} |",
            self.summaries
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---|".repeat(self.summaries.len()));
        for k in keys {
            let cells: Vec<String> = self
                .summaries
                .iter()
                .map(|s| {
                    s.by_verb_resource
                        .get(k)
                        .map_or("0".into(), |v| v.show("", 0))
                })
                .collect();
            let _ = writeln!(md, "| {k} | {} |", cells.join(" | "));
        }
        let _ = writeln!(
            md,
            "\nUser agents seen (attribution: audit user `admin` and these program names):\n"
        );
        for s in &self.summaries {
            let _ = writeln!(
                md,
                "- {}: {}",
                s.key,
                s.user_agents
                    .iter()
                    .map(|a| format!("`{a}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
    }

    fn expand_markdown(&self, md: &mut String) {
        let Some(n) = self
            .summaries
            .iter()
            .find_map(|s| s.expand.as_ref().map(|e| e.n))
        else {
            return;
        };
        let _ = writeln!(
            md,
            "\n## Expansion\n\nN = {n} claims of an Immediate, reclaim-Delete class with \
             `allowVolumeExpansion: true`, provisioned by the configuration's provisioner, then \
             every request raised from 1Gi to 2Gi at once; each timed from its patch until the \
             PersistentVolume and the claim's status both show 2Gi (the mock driver expands on \
             the controller, no node expansion). Requests, CPU and peak RSS: the \
             configuration's, from the first patch until the last claim was done and its \
             requests stopped for a second (the Events it still owed). Ratios are ours/Go.\n"
        );
        if let Some(why) = self.expand_without_go() {
            let _ = writeln!(md, "No Go figure: {why}.\n");
        }
        let _ = writeln!(
            md,
            "| figure | {} |",
            self.summaries
                .iter()
                .map(|s| s.key.as_str())
                .collect::<Vec<_>>()
                .join(" | ")
        );
        let _ = writeln!(md, "|---|{}", "---|".repeat(self.summaries.len()));
        type GetE = fn(&ExpandSummary) -> Stat;
        let rows: [(&str, GetE, &str, usize); 6] = [
            ("all expanded", |e| e.all_done_s, " s", 2),
            ("patched → expanded p50", |e| e.done_p50_ms, " ms", 0),
            ("patched → expanded p99", |e| e.done_p99_ms, " ms", 0),
            (
                "API requests per expansion",
                |e| e.requests_per_expansion,
                "",
                1,
            ),
            ("CPU seconds", |e| e.cpu_s, " s", 2),
            ("peak RSS, sum", |e| e.peak_rss_mib, " MiB", 1),
        ];
        let go_e = self.summary_of("go").and_then(|g| g.expand.as_ref());
        for (label, get, unit, decimals) in rows {
            let cells: Vec<String> = self
                .summaries
                .iter()
                .map(|s| match &s.expand {
                    None => "–".to_string(),
                    Some(e) if s.key == "go" => get(e).show(unit, decimals),
                    Some(e) => format!(
                        "{} (×{})",
                        get(e).show(unit, decimals),
                        ratio(get(e).median, go_e.map(|g| get(g).median))
                    ),
                })
                .collect();
            let _ = writeln!(md, "| {label} | {} |", cells.join(" | "));
        }
    }

    fn size(&self, side: &str, name: &str) -> Option<f64> {
        self.binaries
            .iter()
            .find(|b| b.side == side && b.name == name)
            .map(|b| b.bytes as f64 / (1024.0 * 1024.0))
    }

    fn sizes_markdown(&self, md: &mut String) {
        let _ = writeln!(md, "\n## Binary sizes\n");
        let _ = writeln!(md, "| binary | Go | ours | ours/Go |");
        let _ = writeln!(md, "|---|---|---|---|");
        let size = |side: &str, name: &str| self.size(side, name);
        for name in self
            .sidecars
            .iter()
            .map(String::as_str)
            .chain(["csi-sidecars"])
        {
            let (g, o) = (size("go", name), size("ours", name));
            if g.is_none() && o.is_none() {
                continue;
            }
            let show = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} MiB"));
            let _ = writeln!(
                md,
                "| {name} | {} | {} | {} |",
                show(g),
                show(o),
                o.map_or("–".into(), |o| ratio(o, g))
            );
        }
        let split: f64 = self.sidecars.iter().filter_map(|n| size("ours", n)).sum();
        if split > 0.0 {
            let _ = writeln!(md, "| sum, ours one per sidecar | – | {split:.1} MiB | – |");
        }
    }

    /// The Go sidecars missing from the Go configuration (process names of ours-split that the
    /// Go configuration lacks).
    fn go_missing(&self) -> Vec<String> {
        let processes = |key: &str| {
            self.configurations
                .iter()
                .find(|c| c.key == key)
                .map(|c| c.processes.clone())
                .unwrap_or_default()
        };
        let go = processes("go");
        processes("ours-split")
            .into_iter()
            .filter(|p| !go.contains(p))
            .collect()
    }

    /// Why the Go sum is short, for the targets ("" when it is not).
    fn go_sum_note(&self) -> String {
        let missing = self.go_missing();
        if missing.is_empty() {
            return String::new();
        }
        format!(
            " — the Go sum has only {} because {} cannot be built here (the Go module proxy \
             refuses their modules; see release-tools/e2e-versions.toml), so ours is compared \
             doing more work than Go: this understates the margin",
            self.configurations
                .iter()
                .find(|c| c.key == "go")
                .map(|c| c.processes.join(", "))
                .unwrap_or_default(),
            missing.join(" and ")
        )
    }

    fn targets(&self) -> Vec<String> {
        let mut out = Vec::new();
        let has_go = self.configurations.iter().any(|c| c.key == "go");
        if !has_go {
            out.push("not evaluated: the Go configuration was not run (--only ours)".into());
        }
        let go = self.summary_of("go");
        if let (Some(go), Some(split)) = (go, self.summary_of("ours-split")) {
            for (name, stats) in &split.processes {
                match go.processes.get(name) {
                    Some(g) => out.push(format!(
                        "idle RSS per sidecar ≤ 1/3 of Go's: {name} {:.1} MiB vs {:.1} MiB (×{:.2}) — {}",
                        stats[0].median,
                        g[0].median,
                        stats[0].median / g[0].median,
                        verdict(stats[0].median * 3.0 <= g[0].median)
                    )),
                    None => out.push(format!(
                        "idle RSS per sidecar ≤ 1/3 of Go's: {name} {:.1} MiB — not evaluated: \
                         no Go {name} here",
                        stats[0].median
                    )),
                }
            }
        }
        if let (Some(go), Some(aio)) = (go, self.summary_of("ours-aio")) {
            out.push(format!(
                "csi-sidecars with everything ≤ 1/5 of the Go sum: {:.1} MiB vs {:.1} MiB (×{:.2}) — {}{}",
                aio.idle_rss_mib.median,
                go.idle_rss_mib.median,
                aio.idle_rss_mib.median / go.idle_rss_mib.median,
                verdict(aio.idle_rss_mib.median * 5.0 <= go.idle_rss_mib.median),
                self.go_sum_note()
            ));
        }
        if let Some(aio) = self.summary_of("ours-aio") {
            out.push(format!(
                "watches opened by csi-sidecars = distinct (type, selector) pairs: {:.0} opened, {:.0} distinct — {}",
                aio.watches.median,
                aio.distinct_watches.median,
                verdict(aio.watches.median <= aio.distinct_watches.median)
            ));
        }
        if let Some(go) = go {
            for s in [self.summary_of("ours-split"), self.summary_of("ours-aio")]
                .into_iter()
                .flatten()
            {
                let (ours, theirs) = (s.attach_total_s, go.attach_total_s);
                let mut line = format!(
                    "{}: attach throughput ≥ Go's: {:.2} s vs {:.2} s for all N — {}",
                    s.key,
                    ours.median,
                    theirs.median,
                    verdict(ours.median <= theirs.median)
                );
                if ours.median > theirs.median {
                    let overlap = ours.min <= theirs.max;
                    line.push_str(&format!(
                        " by {:.1} %{}",
                        (ours.median / theirs.median - 1.0) * 100.0,
                        if overlap {
                            ", within the runs' spread (a tie): at equal --kube-api-qps both are \
                             bound by the client-side rate limit (about three writes per attachment)"
                        } else {
                            ""
                        }
                    ));
                }
                line.push_str(&format!(
                    "; p99 ≤ Go's: {:.0} ms vs {:.0} ms — {}",
                    s.attach_p99_ms.median,
                    go.attach_p99_ms.median,
                    verdict(s.attach_p99_ms.median <= go.attach_p99_ms.median)
                ));
                out.push(line);
            }
        }
        if let Some(&most) = self.scale_counts().last()
            && let Some(go) = self.scale_of("go", most)
        {
            for name in &self.sidecars {
                let (Some(theirs), Some(ours)) = (
                    go.processes.get(name),
                    self.scale_of("ours-split", most)
                        .and_then(|s| s.processes.get(name)),
                ) else {
                    continue;
                };
                out.push(format!(
                    "with {most} PVs and PVCs: idle {name} ≤ 1/3 of Go's: {:.1} MiB vs {:.1} MiB (×{:.2}) — {}",
                    ours.median,
                    theirs.median,
                    ours.median / theirs.median,
                    verdict(ours.median * 3.0 <= theirs.median)
                ));
            }
            if let Some(aio) = self.scale_of("ours-aio", most) {
                out.push(format!(
                    "with {most} PVs and PVCs: csi-sidecars ≤ 1/5 of the Go sum: {:.1} MiB vs {:.1} MiB (×{:.2}) — {}{}",
                    aio.sum_mib.median,
                    go.sum_mib.median,
                    aio.sum_mib.median / go.sum_mib.median,
                    verdict(aio.sum_mib.median * 5.0 <= go.sum_mib.median),
                    self.go_sum_note()
                ));
            }
        }
        for p in self
            .per_object
            .iter()
            .filter(|p| p.key != "go" && p.process.is_some())
        {
            let name = p.process.as_deref().unwrap_or_default();
            let go = self
                .per_object_of("go", Some(name))
                .map_or(String::new(), |g| format!(" (Go's {name}: {g:.2} KiB)"));
            out.push(format!(
                "{}: ≤ 2 KiB of RSS per cached object: {name} {:.2} KiB{go} — {}",
                p.key,
                p.kib_per_object,
                verdict(p.kib_per_object <= 2.0)
            ));
        }
        out
    }

    /// The summary for README.md (without the markers).
    pub fn readme_block(&self, report_dir: &str) -> String {
        let mut md = String::new();
        let st = &self.settings;
        let t = &self.timestamp;
        let date = if t.len() == 15 {
            format!(
                "{}-{}-{} {}:{} UTC",
                &t[0..4],
                &t[4..6],
                &t[6..8],
                &t[9..11],
                &t[11..13]
            )
        } else {
            t.clone()
        };
        let _ = writeln!(
            md,
            "_Written by `cargo xtask bench` on {date}; regenerated by each full run, do not edit \
             by hand._\n"
        );
        let _ = writeln!(
            md,
            "Machine: {} cores ({}), {:.1} GiB RAM. Reproduce with `{}` ({}). Figures are the \
             median of {} run(s); (×r) is ours/Go. The full report, with min–max, per-process \
             figures, API requests by verb and charts, is written to `{report_dir}`.\n",
            self.machine.cores,
            self.machine.cpu,
            self.machine.memory_gib,
            st.command,
            self.resolved(),
            st.runs
        );
        let keys = self.keys();
        let titles: Vec<&str> = keys
            .iter()
            .map(|k| match *k {
                "go" => "upstream Go",
                "ours-split" => "ours, one process per sidecar",
                "ours-aio" => "ours, `csi-sidecars`",
                other => other,
            })
            .collect();
        let _ = writeln!(md, "| | {} |", titles.join(" | "));
        let _ = writeln!(md, "|---|{}", "---|".repeat(keys.len()));
        let processes: Vec<String> = self
            .configurations
            .iter()
            .map(|c| c.processes.join(", "))
            .collect();
        let _ = writeln!(md, "| processes | {} |", processes.join(" | "));
        let cell = |key: &str, v: Option<f64>, go: Option<f64>, unit: &str, decimals: usize| match v
        {
            None => "–".to_string(),
            Some(v) if key == "go" => format!("{v:.decimals$}{unit}"),
            Some(v) => match go {
                Some(g) if g > 0.0 => format!("{v:.decimals$}{unit} (×{:.2})", v / g),
                _ => format!("{v:.decimals$}{unit}"),
            },
        };
        let go = self.summary_of("go");
        if !self.summaries.is_empty() {
            let row = |label: &str, get: &dyn Fn(&Summary) -> Option<f64>, unit: &str, decimals| {
                let cells: Vec<String> = keys
                    .iter()
                    .map(|k| {
                        cell(
                            k,
                            self.summary_of(k).and_then(get),
                            go.and_then(get),
                            unit,
                            decimals,
                        )
                    })
                    .collect();
                format!("| {label} | {} |\n", cells.join(" | "))
            };
            // One row per sidecar that has a Go counterpart here.
            for name in &self.sidecars {
                if go.is_some_and(|g| g.processes.contains_key(name)) {
                    let idle = |s: &Summary| s.processes.get(name).map(|p| p[0].median);
                    md.push_str(&row(&format!("idle RSS, {name}"), &idle, " MiB", 1));
                }
            }
            md.push_str(&row(
                "idle RSS, sum",
                &|s| Some(s.idle_rss_mib.median),
                " MiB",
                1,
            ));
            md.push_str(&row(
                &format!("peak RSS, sum (N = {})", st.n),
                &|s| Some(s.peak_rss_mib.median),
                " MiB",
                1,
            ));
            md.push_str(&row(
                "CPU during the workload",
                &|s| Some(s.cpu_s.median),
                " s",
                2,
            ));
            md.push_str(&row(
                &format!("attach {}: all done", st.n),
                &|s| Some(s.attach_total_s.median),
                " s",
                2,
            ));
            md.push_str(&row(
                "attach p99",
                &|s| Some(s.attach_p99_ms.median),
                " ms",
                0,
            ));
            md.push_str(&row(
                &format!("detach {}: all gone", st.n),
                &|s| Some(s.detach_total_s.median),
                " s",
                2,
            ));
            if self.summaries.iter().any(|s| s.provision.is_some()) {
                type GetP = fn(&ProvisionSummary) -> f64;
                let provision_rows: [(String, GetP, &str, usize); 5] = [
                    (
                        format!("provision {}: all Bound", st.n),
                        |p| p.all_bound_s.median,
                        " s",
                        2,
                    ),
                    ("provision p50".into(), |p| p.bound_p50_ms.median, " ms", 0),
                    ("provision p99".into(), |p| p.bound_p99_ms.median, " ms", 0),
                    (
                        "provision: API requests per claim".into(),
                        |p| p.requests_per_claim.median,
                        "",
                        1,
                    ),
                    (
                        "provision: CPU (all processes)".into(),
                        |p| p.cpu_s.median,
                        " s",
                        2,
                    ),
                ];
                for (label, get, unit, decimals) in provision_rows {
                    md.push_str(&row(
                        &label,
                        &|s| s.provision.as_ref().map(get),
                        unit,
                        decimals,
                    ));
                }
            }
            if let Some(n) = self
                .summaries
                .iter()
                .find_map(|s| s.expand.as_ref().map(|e| e.n))
            {
                type GetE = fn(&ExpandSummary) -> f64;
                let expand_rows: [(String, GetE, &str, usize); 6] = [
                    (
                        format!("expand {n}: all at the new capacity"),
                        |e| e.all_done_s.median,
                        " s",
                        2,
                    ),
                    ("expand p50".into(), |e| e.done_p50_ms.median, " ms", 0),
                    ("expand p99".into(), |e| e.done_p99_ms.median, " ms", 0),
                    (
                        "expand: API requests per expansion".into(),
                        |e| e.requests_per_expansion.median,
                        "",
                        1,
                    ),
                    (
                        "expand: CPU (all processes)".into(),
                        |e| e.cpu_s.median,
                        " s",
                        2,
                    ),
                    (
                        "expand: peak RSS, sum".into(),
                        |e| e.peak_rss_mib.median,
                        " MiB",
                        1,
                    ),
                ];
                for (label, get, unit, decimals) in expand_rows {
                    md.push_str(&row(
                        &label,
                        &|s| s.expand.as_ref().map(get),
                        unit,
                        decimals,
                    ));
                }
            }
            md.push_str(&row("API requests", &|s| Some(s.requests.median), "", 0));
            md.push_str(&row("watches opened", &|s| Some(s.watches.median), "", 0));
        }
        for count in self.scale_counts() {
            let go = self.scale_of("go", count).map(|s| s.sum_mib.median);
            let cells: Vec<String> = keys
                .iter()
                .map(|k| {
                    cell(
                        k,
                        self.scale_of(k, count).map(|s| s.sum_mib.median),
                        go,
                        " MiB",
                        1,
                    )
                })
                .collect();
            let _ = writeln!(
                md,
                "| idle RSS, sum, {count} PVs and {count} PVCs in the cluster | {} |",
                cells.join(" | ")
            );
        }
        if !self.per_object.is_empty() {
            let go = self.per_object_of("go", None);
            let cells: Vec<String> = keys
                .iter()
                .map(|k| cell(k, self.per_object_of(k, None), go, " KiB", 2))
                .collect();
            let _ = writeln!(
                md,
                "| KiB of idle RSS per cached object (slope over the N above) | {} |",
                cells.join(" | ")
            );
        }
        let sizes: Vec<Option<f64>> = self
            .configurations
            .iter()
            .map(|c| {
                let side = if c.key == "go" { "go" } else { "ours" };
                c.processes
                    .iter()
                    .map(|p| self.size(side, p))
                    .sum::<Option<f64>>()
            })
            .collect();
        let go_size = keys.iter().position(|k| *k == "go").and_then(|i| sizes[i]);
        let cells: Vec<String> = keys
            .iter()
            .zip(&sizes)
            .map(|(k, v)| cell(k, *v, go_size, " MiB", 1))
            .collect();
        let _ = writeln!(md, "| binary size, sum | {} |", cells.join(" | "));
        if let Some(why) = self.expand_without_go() {
            let _ = writeln!(md, "\nThe expand rows have no Go figure: {why}.");
        }
        let _ = writeln!(md, "\nTargets:\n");
        for line in self.targets() {
            let _ = writeln!(md, "- {line}");
        }
        if !self.not_run.is_empty() {
            let _ = writeln!(md, "\nNot measured here:\n");
            for n in &self.not_run {
                let _ = writeln!(md, "- {n}");
            }
        }
        md
    }

    /// Replaces the text between [`README_START`] and [`README_END`] in `readme` with
    /// [`Report::readme_block`], adding a "## Performance" section with the markers before
    /// "## Layout" (or at the end) when they are absent. Nothing else of the file changes.
    pub fn write_readme(&self, readme: &Path, report_dir: &Path) -> anyhow::Result<()> {
        let text = std::fs::read_to_string(readme)?;
        let shown = report_dir
            .strip_prefix(crate::project_root())
            .unwrap_or(report_dir)
            .display()
            .to_string();
        let block = self.readme_block(&shown);
        std::fs::write(readme, splice_readme(&text, &block)?)?;
        Ok(())
    }

    /// The attach latencies of every run of `key`, pooled, sorted.
    pub fn latencies(&self, key: &str, detach: bool) -> Vec<f64> {
        let mut v: Vec<f64> = self
            .runs
            .iter()
            .filter(|r| r.config == key)
            .flat_map(|r| {
                if detach {
                    &r.detach.latencies_ms
                } else {
                    &r.attach.latencies_ms
                }
                .iter()
                .copied()
            })
            .collect();
        v.sort_by(f64::total_cmp);
        v
    }
}

/// KiB per cached object of every process that caches something, and of every configuration
/// whose processes do.
fn per_object(configurations: &[ConfigInfo], scale: &[ScaleSummary]) -> Vec<PerObject> {
    let mut out = Vec::new();
    for c in configurations {
        let points: Vec<&ScaleSummary> = scale.iter().filter(|s| s.key == c.key).collect();
        for name in &c.processes {
            let xy: Vec<(f64, f64)> = points
                .iter()
                .filter_map(|s| {
                    Some((
                        s.process_cached.get(name)?.median,
                        s.processes.get(name)?.median * 1024.0,
                    ))
                })
                .collect();
            if let Some(kib) = kib_per_object(&xy) {
                out.push(PerObject {
                    key: c.key.clone(),
                    process: Some(name.clone()),
                    kib_per_object: kib,
                });
            }
        }
        let xy: Vec<(f64, f64)> = points
            .iter()
            .map(|s| (s.cached.median, s.sum_mib.median * 1024.0))
            .collect();
        if let Some(kib) = kib_per_object(&xy) {
            out.push(PerObject {
                key: c.key.clone(),
                process: None,
                kib_per_object: kib,
            });
        }
    }
    out
}

/// `ours / go` with two decimals, "–" without a Go figure.
fn ratio(ours: f64, go: Option<f64>) -> String {
    match go {
        Some(g) if g > 0.0 => format!("{:.2}", ours / g),
        _ => "–".into(),
    }
}

/// `text` with the bench section replaced by `block` (see [`Report::write_readme`]).
fn splice_readme(text: &str, block: &str) -> anyhow::Result<String> {
    let inner = format!("{README_START}\n{block}{README_END}");
    match (text.find(README_START), text.find(README_END)) {
        (Some(a), Some(b)) if a < b => Ok(format!(
            "{}{inner}{}",
            &text[..a],
            &text[b + README_END.len()..]
        )),
        (None, None) => {
            let section = format!("## Performance\n\n{inner}\n\n");
            Ok(match text.find("\n## Layout\n") {
                Some(i) => format!("{}{section}{}", &text[..i + 1], &text[i + 1..]),
                None => format!(
                    "{}\n{section}",
                    text.trim_end_matches('\n').to_string() + "\n"
                ),
            })
        }
        _ => anyhow::bail!(
            "README.md has one of {README_START} and {README_END} but not both, in order"
        ),
    }
}

fn verdict(met: bool) -> &'static str {
    if met { "**met**" } else { "**missed**" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_section_is_added_once_then_replaced() {
        let text = "# t\n\nintro\n\n## Layout\n\nx\n";
        let once = splice_readme(text, "one\n").unwrap();
        assert_eq!(
            once,
            "# t\n\nintro\n\n## Performance\n\n<!-- bench:start -->\none\n<!-- bench:end -->\n\n## Layout\n\nx\n"
        );
        let twice = splice_readme(&once, "two\n").unwrap();
        assert_eq!(twice, once.replace("one", "two"));
        let appended = splice_readme("# t\n", "b\n").unwrap();
        assert!(
            appended.ends_with("## Performance\n\n<!-- bench:start -->\nb\n<!-- bench:end -->\n\n")
        );
        assert!(splice_readme("<!-- bench:end --> <!-- bench:start -->", "b").is_err());
    }

    #[test]
    fn kib_per_object_is_the_slope_of_rss_over_cached_objects() {
        let kib = kib_per_object(&[(0.0, 10_000.0), (1000.0, 12_000.0), (5000.0, 20_000.0)]);
        assert!((kib.unwrap() - 2.0).abs() < 1e-9, "{kib:?}");
        // Nothing cached (livenessprobe), or one point: no figure.
        assert_eq!(kib_per_object(&[(0.0, 1.0), (0.0, 2.0)]), None);
        assert_eq!(kib_per_object(&[(10.0, 1.0)]), None);
    }

    /// A scale-only report of three configurations at 0 and 1 000 objects: Go's attacher
    /// grows 5 KiB per PV, ours 2 KiB per PV split and all-in-one.
    fn scale_report() -> Report {
        use super::super::{IdleProcess, ScaleKind::*};
        let config = |key: &str, processes: &[(&str, &[ScaleKind])]| ConfigInfo {
            key: key.into(),
            title: key.into(),
            processes: processes.iter().map(|(p, _)| p.to_string()).collect(),
            commands: Vec::new(),
            caches: processes.iter().map(|(_, c)| c.to_vec()).collect(),
        };
        let configurations = vec![
            config("go", &[("csi-attacher", &[PersistentVolume])]),
            config(
                "ours-split",
                &[
                    ("csi-attacher", &[PersistentVolume]),
                    ("livenessprobe", &[]),
                ],
            ),
            config("ours-aio", &[("csi-sidecars", &[PersistentVolume])]),
        ];
        let mut scale_runs = Vec::new();
        for count in [0usize, 1000] {
            let in_cluster =
                BTreeMap::from([(PersistentVolume, count), (PersistentVolumeClaim, count)]);
            let process = |name: &str, base: u64, per: u64, caches: bool| IdleProcess {
                name: name.into(),
                idle_rss_kib: base + per * count as u64,
                cached: if caches { count } else { 0 },
            };
            for (key, processes) in [
                ("go", vec![process("csi-attacher", 50_000, 5, true)]),
                (
                    "ours-split",
                    vec![
                        process("csi-attacher", 16_000, 2, true),
                        process("livenessprobe", 8_000, 0, false),
                    ],
                ),
                ("ours-aio", vec![process("csi-sidecars", 17_000, 2, true)]),
            ] {
                scale_runs.push(ScaleResult {
                    config: key.into(),
                    count,
                    in_cluster: in_cluster.clone(),
                    run: 0,
                    processes,
                    cached: count,
                });
            }
        }
        let settings = Settings {
            command: "cargo xtask bench --scale-only".into(),
            n: 0,
            scale_pvs: vec![0, 1000],
            scale_only: true,
            runs: 1,
            only: "all".into(),
            profile: "release".into(),
            qps: "50".into(),
            burst: "100".into(),
            workers: "10".into(),
            driver: "mock".into(),
        };
        Report::new(
            "20261130-080000".into(),
            settings,
            vec!["csi-attacher".into(), "livenessprobe".into()],
            configurations,
            Vec::new(),
            scale_runs,
            Vec::new(),
            Vec::new(),
            BTreeMap::new(),
            1.0,
        )
    }

    #[test]
    fn kib_per_cached_object_is_reported_next_to_gos() {
        let report = scale_report();
        let figure = |key: &str, process: Option<&str>| report.per_object_of(key, process);
        assert!((figure("go", None).unwrap() - 5.0).abs() < 1e-9);
        assert!((figure("ours-split", Some("csi-attacher")).unwrap() - 2.0).abs() < 1e-9);
        assert!((figure("ours-aio", None).unwrap() - 2.0).abs() < 1e-9);
        // livenessprobe caches nothing: no figure.
        assert_eq!(figure("ours-split", Some("livenessprobe")), None);

        let md = report.markdown(&[]);
        assert!(
            md.contains("| ours-split | csi-attacher | PVs | 2.00 | 0.40 |"),
            "{md}"
        );
        assert!(
            md.contains("| ours-aio | sum | PVs | 2.00 | 0.40 |"),
            "{md}"
        );
        assert!(
            md.contains("ours-split: ≤ 2 KiB of RSS per cached object: csi-attacher 2.00 KiB (Go's csi-attacher: 5.00 KiB) — **met**"),
            "{md}"
        );
        let readme = report.readme_block("target/bench/x");
        assert!(
            readme.contains("| KiB of idle RSS per cached object (slope over the N above) | 5.00 KiB | 2.00 KiB (×0.40) | 2.00 KiB (×0.40) |"),
            "{readme}"
        );
        assert!(
            readme.contains("| idle RSS, sum, 1000 PVs and 1000 PVCs in the cluster |"),
            "{readme}"
        );
    }

    /// Ours expands claims, Go cannot: the expand rows show "–" for Go and say why.
    #[test]
    fn expansions_without_a_go_figure_say_why() {
        use super::super::workload::Phase;
        use super::super::{ExpandResult, ProcessResult};
        let config = |key: &str, process: &str| ConfigInfo {
            key: key.into(),
            title: key.into(),
            processes: vec![process.into()],
            commands: Vec::new(),
            caches: vec![Vec::new()],
        };
        let phase = |ms: &[f64]| Phase {
            total_s: ms.iter().copied().fold(0.0, f64::max) / 1000.0,
            latencies_ms: ms.to_vec(),
        };
        let run = |key: &str, process: &str, expand: Option<ExpandResult>| RunResult {
            config: key.into(),
            run: 0,
            processes: vec![ProcessResult {
                name: process.into(),
                idle_rss_kib: 10_240,
                peak_rss_kib: 20_480,
                cpu_s: 1.0,
            }],
            attach: phase(&[100.0]),
            detach: phase(&[100.0]),
            api: Default::default(),
            provision: None,
            expand,
        };
        let expanded = ExpandResult {
            n: 2,
            done: phase(&[500.0, 1500.0]),
            api: super::super::audit::ApiLoad {
                total: 9,
                ..Default::default()
            },
            cpu_s: 0.25,
            peak_rss_kib: 30_720,
        };
        let settings = Settings {
            command: "cargo xtask bench --n 4".into(),
            n: 4,
            scale_pvs: Vec::new(),
            scale_only: false,
            runs: 1,
            only: "all".into(),
            profile: "release".into(),
            qps: "50".into(),
            burst: "100".into(),
            workers: "10".into(),
            driver: "mock".into(),
        };
        let why = "upstream Go csi-resizer v2.3.0 cannot be built here: the reason";
        let report = Report::new(
            "20261130-080000".into(),
            settings,
            vec!["csi-attacher".into(), "csi-resizer".into()],
            vec![
                config("go", "csi-attacher"),
                config("ours-aio", "csi-sidecars"),
            ],
            vec![
                run("go", "csi-attacher", None),
                run("ours-aio", "csi-sidecars", Some(expanded)),
            ],
            Vec::new(),
            Vec::new(),
            Vec::new(),
            BTreeMap::from([("expand".to_string(), why.to_string())]),
            1.0,
        );
        let readme = report.readme_block("target/bench/x");
        assert!(
            readme.contains("| expand 2: all at the new capacity | – | 1.50 s |"),
            "{readme}"
        );
        assert!(readme.contains("| expand p50 | – | 500 ms |"), "{readme}");
        assert!(
            readme.contains("| expand: API requests per expansion | – | 4.5 |"),
            "{readme}"
        );
        assert!(
            readme.contains(&format!("The expand rows have no Go figure: {why}.")),
            "{readme}"
        );
        let md = report.markdown(&[]);
        assert!(md.contains(&format!("No Go figure: {why}.")), "{md}");
        assert!(md.contains("| peak RSS, sum | – | 30.0 MiB (×–) |"), "{md}");
        assert!(
            report
                .summary()
                .contains(&format!("expand: no Go figure: {why}"))
        );
    }

    #[test]
    fn medians_with_min_and_max() {
        let s = Stat::of(&[3.0, 1.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        assert_eq!(Stat::of(&[1.0, 2.0]).median, 1.5);
        assert_eq!(s.show(" s", 1), "2.0 s (1.0–3.0)");
        assert_eq!(Stat::of(&[4.0]).show("", 0), "4");
    }
}
