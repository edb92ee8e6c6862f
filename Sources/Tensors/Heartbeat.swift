import Foundation

/// A hook for long loops far from the daemon (sampling steps, feature-extraction batches) to
/// say they advanced: the daemon installs its watchdog ping here, so systemd's watchdog is
/// fed by real progress, never by a timer, and a wedged loop is still restarted.
public enum Heartbeat {
    private final class Box: @unchecked Sendable {
        let lock = NSLock()
        var beat: (@Sendable () -> Void)?
    }
    private static let box = Box()

    /// Installs (or with nil removes) what `beat()` calls.
    public static func install(_ f: (@Sendable () -> Void)?) {
        box.lock.lock()
        box.beat = f
        box.lock.unlock()
    }

    /// One unit of progress (cheap: the installed closure rate-limits its pings).
    public static func beat() {
        box.lock.lock()
        let f = box.beat
        box.lock.unlock()
        f?()
    }
}
