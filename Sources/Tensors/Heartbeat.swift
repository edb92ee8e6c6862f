import Foundation

/// A hook for long loops far from the daemon (sampling steps, feature-extraction batches) to
/// say they advanced: the daemon installs its watchdog ping here, so systemd's watchdog is
/// fed by real progress, never by a timer, and a wedged loop is still restarted.
public enum Heartbeat {
    private final class Observers: @unchecked Sendable {
        let lock = NSLock()
        var next = 0
        var all: [Int: @Sendable () -> Void] = [:]
    }
    private static let observers = Observers()

    /// Adds what `beat()` calls; returns the id to `remove` it with. Several may be installed
    /// (tests run jobs side by side in one process).
    @discardableResult
    public static func install(_ f: @escaping @Sendable () -> Void) -> Int {
        observers.lock.lock()
        defer { observers.lock.unlock() }
        observers.next += 1
        observers.all[observers.next] = f
        return observers.next
    }

    public static func remove(_ id: Int) {
        observers.lock.lock()
        observers.all[id] = nil
        observers.lock.unlock()
    }

    /// One unit of progress (cheap: the installed closures rate-limit their pings).
    public static func beat() {
        observers.lock.lock()
        let fs = observers.all.values
        observers.lock.unlock()
        for f in fs { f() }
    }
}
