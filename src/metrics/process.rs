//! The process's memory and CPU, under the names every Prometheus client library gives them
//! (daprd's Go client among them: `process_resident_memory_bytes`, `process_cpu_seconds_total`,
//! `process_virtual_memory_bytes`, `process_start_time_seconds`), so the panels and alerts that
//! read them for daprd read dlockd. Linux only, from `/proc/self`; elsewhere (Windows, macOS)
//! these metrics are absent rather than wrong.

#[cfg(target_os = "linux")]
pub(crate) use linux::Process;

#[cfg(not(target_os = "linux"))]
pub(crate) struct Process;

#[cfg(not(target_os = "linux"))]
impl Process {
    pub(crate) fn new(_: &prometheus::Registry) -> prometheus::Result<Self> {
        Ok(Process)
    }

    pub(crate) fn read(&self) {}
}

#[cfg(target_os = "linux")]
mod linux {
    use prometheus::{Counter, Gauge, Opts, Registry};

    pub(crate) struct Process {
        cpu_seconds: Counter,
        resident: Gauge,
        virtual_memory: Gauge,
        start_time: Gauge,
    }

    impl Process {
        pub(crate) fn new(registry: &Registry) -> prometheus::Result<Self> {
            let process = Process {
                cpu_seconds: Counter::with_opts(Opts::new(
                    "process_cpu_seconds_total",
                    "Total user and system CPU time spent in seconds.",
                ))?,
                resident: gauge(
                    "process_resident_memory_bytes",
                    "Resident memory size in bytes.",
                )?,
                virtual_memory: gauge(
                    "process_virtual_memory_bytes",
                    "Virtual memory size in bytes.",
                )?,
                start_time: gauge(
                    "process_start_time_seconds",
                    "Start time of the process since unix epoch in seconds.",
                )?,
            };
            registry.register(Box::new(process.cpu_seconds.clone()))?;
            for family in [
                &process.resident,
                &process.virtual_memory,
                &process.start_time,
            ] {
                registry.register(Box::new(family.clone()))?;
            }
            Ok(process)
        }

        /// Reads `/proc/self/stat`; a read that fails leaves the last values.
        pub(crate) fn read(&self) {
            let Some(stat) = Stat::read() else { return };
            let cpu = stat.cpu_seconds();
            // A counter only rises: add what was spent since the last read.
            let past = self.cpu_seconds.get();
            if cpu > past {
                self.cpu_seconds.inc_by(cpu - past);
            }
            self.resident.set(stat.resident_bytes());
            self.virtual_memory.set(stat.virtual_bytes as f64);
            if let Some(start) = stat.start_time() {
                self.start_time.set(start);
            }
        }
    }

    fn gauge(name: &str, help: &str) -> prometheus::Result<Gauge> {
        Gauge::with_opts(Opts::new(name, help))
    }

    /// The fields of `/proc/self/stat` used here (proc(5)).
    struct Stat {
        user_ticks: u64,
        system_ticks: u64,
        start_ticks: u64,
        virtual_bytes: u64,
        resident_pages: u64,
    }

    impl Stat {
        fn read() -> Option<Stat> {
            Stat::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
        }

        /// Parses the line; the command name, in parentheses, may hold spaces and ')', so the
        /// fields are counted from its last ')'.
        fn parse(line: &str) -> Option<Stat> {
            let after_name = &line[line.rfind(')')? + 1..];
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            // `fields[0]` is field 3 of proc(5), the state.
            let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
            Some(Stat {
                user_ticks: field(14)?,
                system_ticks: field(15)?,
                start_ticks: field(22)?,
                virtual_bytes: field(23)?,
                resident_pages: field(24)?,
            })
        }

        fn cpu_seconds(&self) -> f64 {
            (self.user_ticks + self.system_ticks) as f64 / ticks_per_second()
        }

        #[allow(unsafe_code, reason = "sysconf is a libc call")]
        fn resident_bytes(&self) -> f64 {
            // SAFETY: sysconf only reads a configuration value.
            let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
            self.resident_pages as f64 * page.max(1) as f64
        }

        /// The boot time (`btime` in /proc/stat) plus the start's ticks after boot.
        fn start_time(&self) -> Option<f64> {
            let stat = std::fs::read_to_string("/proc/stat").ok()?;
            let boot: f64 = stat
                .lines()
                .find_map(|line| line.strip_prefix("btime "))?
                .trim()
                .parse()
                .ok()?;
            Some(boot + self.start_ticks as f64 / ticks_per_second())
        }
    }

    #[allow(unsafe_code, reason = "sysconf is a libc call")]
    fn ticks_per_second() -> f64 {
        // SAFETY: sysconf only reads a configuration value.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        ticks.max(1) as f64
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn a_command_name_with_spaces_and_parentheses_is_skipped() {
            let line = "42 (dl (o) ck) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 3 0 \
                        1234 10485760 512 18446744073709551615";
            let stat = Stat::parse(line).unwrap();
            assert_eq!((stat.user_ticks, stat.system_ticks), (250, 50));
            assert_eq!(stat.start_ticks, 1234);
            assert_eq!(stat.virtual_bytes, 10485760);
            assert_eq!(stat.resident_pages, 512);
        }

        #[test]
        fn this_process_reads_its_own_figures() {
            let stat = Stat::read().unwrap();
            assert!(stat.resident_bytes() > 0.0);
            let start = stat.start_time().unwrap();
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs_f64();
            assert!(
                start > now - 86_400.0 * 365.0 && start <= now + 1.0,
                "{start}"
            );
        }
    }
}
