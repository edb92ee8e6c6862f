import Foundation

/// The sd_notify protocol spoken directly (no libsystemd): one datagram of `KEY=VALUE` lines to
/// the AF_UNIX socket named by `$NOTIFY_SOCKET` (`/path`, or `@name` for the abstract
/// namespace). Without `$NOTIFY_SOCKET` every call does nothing, which is what `--once` in CI
/// and a terminal need. Send errors are ignored, as sd_notify(3) recommends.
///
/// The watchdog is fed from `heartbeat()`, which the daemon calls when it makes progress
/// (each training step, each idle wake-up), never from a free-running timer: a wedged trainer
/// must stop the pings so systemd restarts it.
public final class SystemdNotifier: @unchecked Sendable {
    public let socketPath: String?
    /// Half of `$WATCHDOG_USEC` (the recommended ping interval), when the watchdog is on for us.
    public let watchdogInterval: Double?
    private let lock = NSLock()
    private var lastPing = -Double.infinity
    private var lastStatus = ""
    private var lastStatusTime = -Double.infinity

    public init(environment: [String: String] = ProcessInfo.processInfo.environment) {
        let path = environment["NOTIFY_SOCKET"].flatMap { $0.isEmpty ? nil : $0 }
        socketPath = path
        var interval: Double?
        if path != nil, let usec = environment["WATCHDOG_USEC"].flatMap(Double.init), usec > 0 {
            // WATCHDOG_PID, when set, names the process meant to ping.
            if let pid = environment["WATCHDOG_PID"].flatMap(Int32.init), pid != getpid() {
                interval = nil
            } else {
                interval = usec / 2e6
            }
        }
        watchdogInterval = interval
    }

    public var isEnabled: Bool { socketPath != nil }

    /// Sends one datagram; returns whether it was delivered (false when disabled).
    @discardableResult
    public func send(_ message: String) -> Bool {
        guard let path = socketPath else { return false }
        return SystemdNotifier.sendDatagram(message, to: path)
    }

    public func ready(status: String) { send("READY=1\nSTATUS=\(SystemdNotifier.oneLine(status))") }
    public func stopping(status: String) { send("STOPPING=1\nSTATUS=\(SystemdNotifier.oneLine(status))") }

    /// Updates `STATUS=` (at most once a second unless `force`; repeated identical text is skipped).
    public func status(_ text: String, force: Bool = false) {
        guard isEnabled else { return }
        let now = SystemdNotifier.monotonic()
        lock.lock()
        let due = force || (text != lastStatus && now - lastStatusTime >= 1)
        if due { lastStatus = text; lastStatusTime = now }
        lock.unlock()
        if due { send("STATUS=\(SystemdNotifier.oneLine(text))") }
    }

    /// Sends `WATCHDOG=1` if half the watchdog period has passed since the last one.
    public func heartbeat() {
        guard let interval = watchdogInterval else { return }
        let now = SystemdNotifier.monotonic()
        lock.lock()
        let due = now - lastPing >= interval
        if due { lastPing = now }
        lock.unlock()
        if due { send("WATCHDOG=1") }
    }

    /// Asks systemd for more time (e.g. while writing a checkpoint during shutdown).
    public func extendTimeout(seconds: Double) { send("EXTEND_TIMEOUT_USEC=\(Int(seconds * 1e6))") }

    static func oneLine(_ s: String) -> String { s.replacingOccurrences(of: "\n", with: " ") }

    static func monotonic() -> Double {
        var ts = timespec()
        clock_gettime(CLOCK_MONOTONIC, &ts)
        return Double(ts.tv_sec) + Double(ts.tv_nsec) * 1e-9
    }

    /// One datagram to an AF_UNIX socket path; `@` at the start means the abstract namespace
    /// (the `@` becomes a NUL byte and the address length excludes any trailing NUL).
    static func sendDatagram(_ message: String, to path: String) -> Bool {
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard fd >= 0 else { return false }
        defer { close(fd) }
        var addr = sockaddr_un()
        addr.sun_family = sa_family_t(AF_UNIX)
        var pathBytes = Array(path.utf8)
        let abstract = pathBytes.first == UInt8(ascii: "@")
        if abstract { pathBytes[0] = 0 }
        let capacity = MemoryLayout.size(ofValue: addr.sun_path)
        guard pathBytes.count < capacity else { return false }
        withUnsafeMutableBytes(of: &addr.sun_path) { raw in
            raw.copyBytes(from: pathBytes)
            if !abstract { raw[pathBytes.count] = 0 }
        }
        let length = MemoryLayout<sa_family_t>.size + pathBytes.count + (abstract ? 0 : 1)
        let payload = Array(message.utf8)
        let sent = payload.withUnsafeBytes { buf in
            withUnsafePointer(to: &addr) { ptr in
                ptr.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                    sendto(fd, buf.baseAddress, buf.count, Int32(MSG_NOSIGNAL), $0, socklen_t(length))
                }
            }
        }
        return sent == payload.count
    }
}
