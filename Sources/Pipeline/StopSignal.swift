@preconcurrency import Dispatch
import Foundation

/// The shutdown request: SIGTERM/SIGINT set it, the training loop checks it between steps
/// (finish the step, checkpoint, return), and the idle wait wakes on it through a pipe.
///
/// Signal sources are created in a plain nonisolated function: a Dispatch handler closure
/// formed in top-level `main.swift` code would be main-actor isolated and trap when Dispatch
/// runs it on its own queue (swift-ground.md §4).
public final class StopSignal: @unchecked Sendable {
    private let lock = NSLock()
    private var requested: String?
    private var sources: [any DispatchSourceSignal] = []
    private var interrupts = 0
    /// Read end (for poll) and write end of the wake-up pipe.
    let wakeRead: Int32
    let wakeWrite: Int32

    public init() {
        var fds: [Int32] = [-1, -1]
        if pipe(&fds) == 0 {
            for fd in fds {
                _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
                _ = fcntl(fd, F_SETFL, O_NONBLOCK)
            }
        } else {
            fds = [-1, -1]
        }
        wakeRead = fds[0]
        wakeWrite = fds[1]
    }

    deinit {
        for s in sources { s.cancel() }
        if wakeRead >= 0 { close(wakeRead) }
        if wakeWrite >= 0 { close(wakeWrite) }
    }

    /// True once a stop was requested.
    public var isRequested: Bool {
        lock.lock(); defer { lock.unlock() }
        return requested != nil
    }

    /// What asked for the stop (e.g. "SIGTERM").
    public var reason: String? {
        lock.lock(); defer { lock.unlock() }
        return requested
    }

    public func request(_ reason: String) {
        lock.lock()
        if requested == nil { requested = reason }
        lock.unlock()
        if wakeWrite >= 0 {
            var b: UInt8 = 1
            _ = write(wakeWrite, &b, 1)
        }
    }

    /// Routes SIGTERM and SIGINT to `request`. A second SIGINT (Ctrl-C twice) exits at once
    /// with 130: checkpoints are atomic, so the job resumes from the last complete one.
    /// `onSignal` runs on a Dispatch queue (for logging).
    public func installHandlers(onSignal: (@Sendable (String) -> Void)? = nil) {
        StopSignal.install(self, onSignal: onSignal)
    }

    nonisolated static func install(_ stop: StopSignal, onSignal: (@Sendable (String) -> Void)?) {
        let queue = DispatchQueue(label: "learngene.signals")
        for (sig, name) in [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")] {
            signal(sig, SIG_IGN)  // the default action would kill us before Dispatch sees the signal
            let source = DispatchSource.makeSignalSource(signal: sig, queue: queue)
            source.setEventHandler {
                stop.lock.lock()
                if sig == SIGINT { stop.interrupts += 1 }
                let again = stop.interrupts >= 2
                stop.lock.unlock()
                if again {
                    onSignal?("second SIGINT: exiting now; the job resumes from its last checkpoint")
                    _exit(130)
                }
                onSignal?("\(name): finishing the current step, then checkpointing and exiting")
                stop.request(name)
            }
            source.resume()
            stop.lock.lock()
            stop.sources.append(source)
            stop.lock.unlock()
        }
    }

    /// Drains the wake-up pipe (after poll reported it readable).
    func drain() {
        var buf = [UInt8](repeating: 0, count: 64)
        while read(wakeRead, &buf, 64) > 0 {}
    }
}
