//! `waitbench --compare-c DIR`: this measurement next to the C one in
//! `perf-reference/waitbench.c`, same sizes, same blocks, same CPU, in
//! alternating rounds (the C program first in odd rounds), so that both
//! meet the same machine. Each round gives one ratio per call and N; the
//! report is the median of the rounds' ratios.

use std::io;
use std::path::Path;
use std::process::Command;

use crate::results::{Row, format_ratio, markdown_table, thousands};
use crate::waitbench::{Call, Ready, Settings, median};

/// One run of the C program: the median block and the fastest block of
/// each call at each N.
pub struct CRun {
    pub median: Vec<Row>,
    pub min: Vec<Row>,
}

/// Runs the C `waitbench` once and reads its `RES` and `SPREAD` lines.
pub fn run_c(
    binary: &Path,
    sizes: &[usize],
    settings: &Settings,
    cpu: Option<usize>,
) -> io::Result<CRun> {
    let list: Vec<String> = sizes.iter().map(|n| n.to_string()).collect();
    let mut command = Command::new(binary);
    command
        .arg("-n")
        .arg(list.join(","))
        .arg("-k")
        .arg(settings.blocks.to_string())
        .arg("-m")
        .arg(settings.block_ms.to_string())
        .arg("-r")
        .arg(match settings.ready {
            Ready::First => "first",
            Ready::Last => "last",
        })
        .arg("-t")
        .arg(if settings.zero_timeout {
            "zero"
        } else {
            "block"
        });
    if let Some(cpu) = cpu {
        command.arg("-c").arg(cpu.to_string());
    }
    let output = command.output().map_err(|e| {
        io::Error::other(format!(
            "cannot run {}: {e} (build it: make -C perf-reference BUILD=DIR)",
            binary.display()
        ))
    })?;
    if !output.status.success() {
        return Err(io::Error::other(format!(
            "{} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    let text = String::from_utf8_lossy(&output.stdout);
    Ok(CRun {
        median: parse_c(&text),
        min: parse_c_min(&text),
    })
}

/// The C program's names of the calls, in [`Call::ALL`] order.
const C_NAMES: [&str; 5] = ["select", "poll", "epoll", "ctl_add_del", "getppid"];

/// The fastest block of each call: lines like
/// `SPREAD  N=10  poll  min=480.2  median=500.1  max=900.3  iters/block=...`.
pub fn parse_c_min(text: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = Vec::new();
    for line in text.lines().filter(|l| l.starts_with("SPREAD\t")) {
        let fields: Vec<&str> = line.split('\t').collect();
        let (Some(n), Some(name), Some(min)) = (
            fields
                .get(1)
                .and_then(|f| f.strip_prefix("N=")?.parse::<usize>().ok()),
            fields.get(2),
            fields
                .get(3)
                .and_then(|f| f.strip_prefix("min=")?.parse::<f64>().ok()),
        ) else {
            continue;
        };
        let Some(i) = C_NAMES.iter().position(|c| c == name) else {
            continue;
        };
        if rows.last().is_none_or(|r| r.n != n) {
            rows.push(Row { n, ns: [None; 5] });
        }
        if let Some(row) = rows.last_mut() {
            row.ns[i] = Some(min);
        }
    }
    rows
}

/// The rows of the C program's output: lines like
/// `RES  N=10  select=612.3  poll=590.1  epoll=330.2  ctl_add_del=901.0  getppid=250.3 ...`
/// (a negative select: not measured).
pub fn parse_c(text: &str) -> Vec<Row> {
    let keys = C_NAMES;
    text.lines()
        .filter(|line| line.starts_with("RES\t"))
        .filter_map(|line| {
            let field = |key: &str| {
                line.split('\t')
                    .find_map(|f| f.strip_prefix(key)?.strip_prefix('='))
                    .and_then(|v| v.parse::<f64>().ok())
            };
            let n = field("N")? as usize;
            let mut ns = [None; 5];
            for (slot, key) in ns.iter_mut().zip(keys) {
                *slot = field(key).filter(|v| *v >= 0.0);
            }
            Some(Row { n, ns })
        })
        .collect()
}

/// The rounds of both sides.
#[derive(Default)]
pub struct Comparison {
    /// One run of this program per round (median blocks).
    pub ours: Vec<Vec<Row>>,
    /// One run of the C program per round (median blocks).
    pub c: Vec<Vec<Row>>,
    /// The same runs' fastest blocks.
    pub ours_min: Vec<Vec<Row>>,
    pub c_min: Vec<Vec<Row>>,
}

impl Comparison {
    /// The median over the rounds of each call at each N.
    pub fn medians(rounds: &[Vec<Row>]) -> Vec<Row> {
        let Some(first) = rounds.first() else {
            return Vec::new();
        };
        first
            .iter()
            .map(|row| {
                let mut out = Row {
                    n: row.n,
                    ns: [None; 5],
                };
                for call in Call::ALL {
                    let mut values: Vec<f64> = rounds
                        .iter()
                        .filter_map(|r| r.iter().find(|x| x.n == row.n)?.ns(call))
                        .collect();
                    out.ns[call.index()] = median(&mut values);
                }
                out
            })
            .collect()
    }

    /// Ours over C, the median of the per-round ratios of the median
    /// blocks, at each N (rows in the same layout: `ns` holds ratios here).
    pub fn ratios(&self) -> Vec<Row> {
        ratios(&self.ours, &self.c)
    }

    /// The same for the fastest blocks.
    pub fn min_ratios(&self) -> Vec<Row> {
        ratios(&self.ours_min, &self.c_min)
    }

    /// The comparison as Markdown: two ratio tables (median blocks, fastest
    /// blocks), each followed by its largest ratio.
    pub fn render(&self) -> String {
        let mut out = format!(
            "This program's time per call over the C program's (perf-reference \
             waitbench.c), elapsed time, the median of {} alternating rounds' ratios; \
             below 1 is faster.\n\nThe median blocks (what the tables report):\n\n",
            self.ours.len()
        );
        out.push_str(&ratio_table(&self.ratios()));
        out.push_str(
            "\nThe fastest blocks (the least disturbed by other processes on a busy \
             machine):\n\n",
        );
        out.push_str(&ratio_table(&self.min_ratios()));
        out
    }
}

/// A table of ratios, and a line naming the largest.
fn ratio_table(ratios: &[Row]) -> String {
    let header = [
        "N",
        "select",
        "poll",
        "epoll_wait",
        "ctl ADD+DEL",
        "getppid",
    ];
    let rows: Vec<Vec<String>> = ratios
        .iter()
        .map(|row| {
            let mut cells = vec![thousands(row.n as u64)];
            for call in Call::ALL {
                cells.push(row.ns(call).map_or("-".to_string(), |r| format!("{r:.2}x")));
            }
            cells
        })
        .collect();
    let mut out = markdown_table(&header, &rows);
    let worst = ratios
        .iter()
        .flat_map(|row| {
            Call::ALL
                .into_iter()
                .filter_map(move |call| Some((row.ns(call)?, call, row.n)))
        })
        .max_by(|a, b| a.0.total_cmp(&b.0));
    if let Some((ratio, call, n)) = worst {
        out.push_str(&format!(
            "\n- largest: {} for {} at N = {}\n",
            format_ratio_2(ratio),
            call.label(),
            thousands(n as u64)
        ));
    }
    out
}

/// `ours` over `c`, the median of the per-round ratios, at each N.
fn ratios(ours_rounds: &[Vec<Row>], c_rounds: &[Vec<Row>]) -> Vec<Row> {
    let Some(first) = ours_rounds.first() else {
        return Vec::new();
    };
    first
        .iter()
        .map(|row| {
            let mut out = Row {
                n: row.n,
                ns: [None; 5],
            };
            for call in Call::ALL {
                let mut values: Vec<f64> = ours_rounds
                    .iter()
                    .zip(c_rounds)
                    .filter_map(|(ours, c)| {
                        let a = ours.iter().find(|x| x.n == row.n)?.ns(call)?;
                        let b = c.iter().find(|x| x.n == row.n)?.ns(call)?;
                        Some(a / b)
                    })
                    .collect();
                out.ns[call.index()] = median(&mut values);
            }
            out
        })
        .collect()
}

/// `1.04x`: two decimals, for ratios near 1.
fn format_ratio_2(r: f64) -> String {
    if r < 10.0 {
        format!("{r:.2}x")
    } else {
        format_ratio(r)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const C_OUTPUT: &str = "# waitbench timeout=block ready=last\n\
RES\tN=10\tselect=600.0\tpoll=500.0\tepoll=300.0\tctl_add_del=900.0\tgetppid=200.0\tpoll/epoll=1.67\tselect/epoll=2.00\tsetup_ms=0\n\
SPREAD\tN=10\tselect\tmin=1\tmedian=2\tmax=3\titers/block=5\n\
RES\tN=2000\tselect=-1.0\tpoll=9000.0\tepoll=310.0\tctl_add_del=950.0\tgetppid=201.0\tpoll/epoll=29.03\tselect/epoll=n/a\tsetup_ms=3\n\
SKIP\tN=50000\tneeds ~50032 fds, RLIMIT_NOFILE is 20000\n";

    #[test]
    fn reads_the_c_programs_results() {
        let rows = parse_c(C_OUTPUT);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].n, 10);
        assert_eq!(
            rows[0].ns,
            [
                Some(600.0),
                Some(500.0),
                Some(300.0),
                Some(900.0),
                Some(200.0)
            ]
        );
        assert_eq!(rows[1].ns[0], None, "select=-1.0 means not measured");
        assert_eq!(rows[1].ns[1], Some(9000.0));
    }

    #[test]
    fn reads_the_c_programs_fastest_blocks() {
        let rows = parse_c_min(C_OUTPUT);
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].n, 10);
        assert_eq!(rows[0].ns[0], Some(1.0), "select min at N = 10");
        assert_eq!(rows[0].ns[1], None, "no SPREAD line for poll");
    }

    #[test]
    fn ratios_are_medians_of_the_rounds() {
        let c = parse_c(C_OUTPUT);
        let scaled = |k: f64| -> Vec<Row> {
            c.iter()
                .map(|r| Row {
                    n: r.n,
                    ns: r.ns.map(|v| v.map(|x| x * k)),
                })
                .collect()
        };
        let comparison = Comparison {
            ours: vec![scaled(1.0), scaled(1.5), scaled(1.1)],
            c: vec![c.clone(), c.clone(), c.clone()],
            ours_min: vec![scaled(0.9)],
            c_min: vec![c.clone()],
        };
        let ratios = comparison.ratios();
        assert!((ratios[0].ns[2].unwrap() - 1.1).abs() < 1e-9);
        assert_eq!(ratios[1].ns[0], None);
        let text = comparison.render();
        assert!(text.contains("1.10x"), "{text}");
        assert!(text.contains("0.90x"), "fastest blocks: {text}");
        assert!(text.contains("3 alternating rounds"), "{text}");
    }
}
