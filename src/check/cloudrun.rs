//! Cloud Run deploy settings from `ctxbuild.toml`: values and combinations Cloud Run rejects,
//! and the small profile the incident outgrew.
//!
//! Limits follow Cloud Run's documentation for services: CPU 0.08–1 (fractional) or 1, 2, 4, 6, 8;
//! memory 128Mi–32Gi; more than 4/8/16/24 GiB needs at least 2/4/6/8 CPUs; 4 CPUs need at least
//! 2 GiB, 6 and 8 CPUs at least 4 GiB; below 1 CPU, more than 512 MiB needs 0.5 CPU, more than
//! 1 GiB needs 1 CPU, and concurrency must be 1; request timeout 1–3600 s.
//! Dockerfile-side timeouts are in `runtime.rs`.

use super::{Finding, RuleId, ServiceCtx};
use crate::service::config::format_memory;

const MIB: u64 = 1024 * 1024;
const GIB: u64 = 1024 * MIB;

/// The least CPU Cloud Run allows for this much memory.
pub fn min_cpu_for_memory(memory: u64) -> f64 {
    match memory {
        m if m > 24 * GIB => 8.0,
        m if m > 16 * GIB => 6.0,
        m if m > 8 * GIB => 4.0,
        m if m > 4 * GIB => 2.0,
        m if m > GIB => 1.0,
        m if m > 512 * MIB => 0.5,
        _ => 0.08,
    }
}

/// The least memory Cloud Run allows for this many CPUs.
pub fn min_memory_for_cpu(cpu: f64) -> u64 {
    if cpu >= 6.0 {
        4 * GIB
    } else if cpu >= 4.0 {
        2 * GIB
    } else {
        128 * MIB
    }
}

/// Whether Cloud Run accepts this CPU value at all.
pub fn valid_cpu(cpu: f64) -> bool {
    if cpu < 1.0 {
        // Fractions in steps of 0.001 from 0.08.
        cpu >= 0.08 && ((cpu * 1000.0).round() - cpu * 1000.0).abs() < 1e-6
    } else {
        [1.0, 2.0, 4.0, 6.0, 8.0].contains(&cpu)
    }
}

pub fn check(cx: &ServiceCtx) -> Vec<Finding> {
    let Some(d) = &cx.service.deploy else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let name = &cx.service.name;
    let mem = format_memory(d.memory);
    if !valid_cpu(d.cpu) {
        out.push(cx.finding(
            RuleId::CloudrunCpu,
            cx.config_loc("deploy.cpu"),
            format!(
                "service `{name}`: Cloud Run does not accept cpu = {}",
                d.cpu
            ),
            "use 1, 2, 4, 6 or 8 CPUs, or a fraction from 0.08 to 1",
        ));
    }
    let cpu_ok = valid_cpu(d.cpu);
    if !(128 * MIB..=32 * GIB).contains(&d.memory) {
        out.push(cx.finding(
            RuleId::CloudrunMemory,
            cx.config_loc("deploy.memory"),
            format!("service `{name}`: memory {} is outside Cloud Run's 128Mi to 32Gi", d.memory_text),
            "set memory between \"128Mi\" and \"32Gi\" (\"512Mi\" or more on the second generation environment)",
        ));
    } else if cpu_ok {
        let need_cpu = min_cpu_for_memory(d.memory);
        if d.cpu < need_cpu {
            out.push(cx.finding(
                RuleId::CloudrunCpuMemory,
                cx.config_loc("deploy.memory"),
                format!("service `{name}`: memory {mem} needs at least {need_cpu} CPU on Cloud Run, the deploy asks for {}", d.cpu),
                format!("raise cpu to {need_cpu} or lower memory"),
            ));
        }
        let need_mem = min_memory_for_cpu(d.cpu);
        if d.memory < need_mem {
            out.push(cx.finding(
                RuleId::CloudrunCpuMemory,
                cx.config_loc("deploy.cpu"),
                format!("service `{name}`: {} CPUs need at least {} of memory on Cloud Run, the deploy asks for {mem}", d.cpu, format_memory(need_mem)),
                format!("raise memory to \"{}\" or lower cpu", format_memory(need_mem)),
            ));
        }
    }
    if cpu_ok && d.cpu < 1.0 && d.concurrency != Some(1) {
        let shown = d
            .concurrency
            .map(|c| c.to_string())
            .unwrap_or_else(|| "80 (the default)".into());
        let key = if d.concurrency.is_some() {
            "deploy.concurrency"
        } else {
            "deploy.cpu"
        };
        out.push(cx.finding(
            RuleId::CloudrunConcurrency,
            cx.config_loc(key),
            format!("service `{name}`: with cpu = {} Cloud Run requires concurrency = 1, the deploy has {shown}", d.cpu),
            "set concurrency = 1 or cpu = 1",
        ));
    }
    if !(1..=3600).contains(&d.request_timeout) {
        out.push(cx.finding(
            RuleId::CloudrunRequestTimeout,
            cx.config_loc("deploy.request_timeout"),
            format!("service `{name}`: request_timeout {} s is outside Cloud Run's 1 to 3600 s", d.request_timeout),
            "set request_timeout to at most 3600 (one hour); longer work belongs in a Cloud Run job",
        ));
    }
    let small = &cx.config.check;
    if d.memory <= small.small_memory && d.cpu <= small.small_cpu {
        out.push(cx.finding(
            RuleId::CloudrunSmallProfile,
            cx.config_loc("deploy.memory"),
            format!(
                "service `{name}`: {mem} / {} CPU is at or below the {} / {} CPU profile the incident outgrew",
                d.cpu,
                format_memory(small.small_memory),
                small.small_cpu
            ),
            "give it memory = \"1Gi\" or more (and cpu = 1 or more), or lower check.small_profile_memory if this service really is small",
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::service::config::Config;
    use std::path::Path;

    fn rules(deploy: &str, check_table: &str) -> Vec<&'static str> {
        let text = format!(
            "[services.api]\nkind = \"node\"\n[services.api.deploy]\n{deploy}\n{check_table}"
        );
        let config = Config::parse(Path::new("ctxbuild.toml"), &text).unwrap();
        let cx = ServiceCtx {
            config: &config,
            service: &config.services[0],
            context_dir: ".".into(),
            dockerfile: None,
            context: None,
        };
        check(&cx).into_iter().map(|f| f.rule.as_str()).collect()
    }

    #[test]
    fn good_profiles_pass() {
        assert!(rules("cpu = 1\nmemory = \"1Gi\"", "").is_empty());
        assert!(rules("cpu = 2\nmemory = \"8Gi\"\nrequest_timeout = 3600", "").is_empty());
        assert!(rules("cpu = 8\nmemory = \"32Gi\"", "").is_empty());
        assert!(rules("cpu = 0.5\nmemory = \"1Gi\"\nconcurrency = 1", "").is_empty());
    }

    #[test]
    fn memory_needs_cpu() {
        assert_eq!(
            rules("cpu = 1\nmemory = \"5Gi\"", ""),
            ["cloudrun-cpu-memory"]
        );
        assert_eq!(
            rules("cpu = 2\nmemory = \"9Gi\"", ""),
            ["cloudrun-cpu-memory"]
        );
        assert_eq!(
            rules("cpu = 4\nmemory = \"17Gi\"", ""),
            ["cloudrun-cpu-memory"]
        );
        assert_eq!(
            rules("cpu = 6\nmemory = \"25Gi\"", ""),
            ["cloudrun-cpu-memory"]
        );
        assert!(rules("cpu = 2\nmemory = \"4Gi\"", "").is_empty());
    }

    #[test]
    fn cpu_needs_memory() {
        assert_eq!(
            rules("cpu = 4\nmemory = \"1Gi\"", ""),
            ["cloudrun-cpu-memory"]
        );
        assert_eq!(
            rules("cpu = 8\nmemory = \"2Gi\"", ""),
            ["cloudrun-cpu-memory"]
        );
        assert!(rules("cpu = 4\nmemory = \"2Gi\"", "").is_empty());
    }

    #[test]
    fn fractional_cpu_limits() {
        assert_eq!(
            rules("cpu = 0.25\nmemory = \"1Gi\"\nconcurrency = 1", ""),
            ["cloudrun-cpu-memory"]
        );
        assert_eq!(
            rules("cpu = 0.5\nmemory = \"2Gi\"\nconcurrency = 1", ""),
            ["cloudrun-cpu-memory"]
        );
        assert_eq!(
            rules("cpu = 0.5\nmemory = \"1Gi\"", ""),
            ["cloudrun-concurrency"]
        );
    }

    #[test]
    fn invalid_values() {
        assert_eq!(rules("cpu = 3\nmemory = \"4Gi\"", ""), ["cloudrun-cpu"]);
        assert_eq!(
            rules("cpu = 0.05\nmemory = \"128Mi\"\nconcurrency = 1", ""),
            ["cloudrun-cpu", "cloudrun-small-profile"]
        );
        assert_eq!(rules("cpu = 8\nmemory = \"64Gi\"", ""), ["cloudrun-memory"]);
        assert_eq!(
            rules("memory = \"1Gi\"\nrequest_timeout = 3601", ""),
            ["cloudrun-request-timeout"]
        );
    }

    #[test]
    fn small_profile_threshold_is_configurable() {
        assert_eq!(
            rules("", ""),
            ["cloudrun-small-profile"],
            "Cloud Run's defaults are the small profile"
        );
        assert_eq!(
            rules("memory = \"512Mi\"\ncpu = 1", ""),
            ["cloudrun-small-profile"]
        );
        assert!(rules("memory = \"1Gi\"", "").is_empty());
        assert_eq!(
            rules(
                "memory = \"1Gi\"",
                "[check]\nsmall_profile_memory = \"1Gi\""
            ),
            ["cloudrun-small-profile"]
        );
        assert!(rules(
            "memory = \"512Mi\"",
            "[check]\nsmall_profile_memory = \"256Mi\""
        )
        .is_empty());
    }
}
