import Foundation
import Logging

/// A job's event log: every event is one JSON line in the job's `log.jsonl` (for tools) and one
/// plain line through the swift-log `Logger` (for people and the journal).
public final class JobLog: @unchecked Sendable {
    public let job: String
    public let logger: Logger
    private let fd: Int32
    private let lock = NSLock()

    /// Appends to `path` (created if missing); nil path logs only to the logger.
    public init(path: String?, job: String, logger: Logger) {
        self.job = job
        self.logger = logger
        fd = path.map { open($0, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o666) } ?? -1
    }

    deinit { if fd >= 0 { close(fd) } }

    /// Records one event: `event` is a short machine name ("start", "progress", "checkpoint"),
    /// `message` the human sentence, `fields` the numbers.
    public func event(_ event: String, _ message: String, level: Logger.Level = .info, _ fields: [(String, JSONValue)] = []) {
        let line: JSONValue = .object([("time", .string(JobLog.preciseTimestamp())), ("level", .string(level.rawValue)),
                                       ("job", .string(job)), ("event", .string(event)), ("message", .string(message))] + fields)
        if fd >= 0 {
            let bytes = Array((line.compact + "\n").utf8)
            lock.lock()
            bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
            lock.unlock()
        }
        logger.log(level: level, "\(message)", metadata: ["job": .string(job)])
    }

    static func preciseTimestamp() -> String {
        var ts = timespec()
        clock_gettime(CLOCK_REALTIME, &ts)
        var tmv = tm()
        var t = ts.tv_sec
        gmtime_r(&t, &tmv)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tmv.tm_year + 1900, tmv.tm_mon + 1, tmv.tm_mday,
                      tmv.tm_hour, tmv.tm_min, tmv.tm_sec, Int(ts.tv_nsec / 1_000_000))
    }
}

/// Plain one-line log output for terminals and the journal: `time level [job] message`.
public struct PlainLogHandler: LogHandler {
    public var logLevel: Logger.Level = .info
    public var metadata: Logger.Metadata = [:]
    let label: String
    /// File descriptor written to (2: standard error).
    let fd: Int32

    public init(label: String, fileDescriptor: Int32 = 2) {
        self.label = label
        self.fd = fileDescriptor
    }

    public subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    public func log(event: LogEvent) {
        var all = metadata
        if let m = event.metadata { all.merge(m) { $1 } }
        let job = all.removeValue(forKey: "job").map { "[\($0)] " } ?? ""
        let rest = all.isEmpty ? "" : " " + all.keys.sorted().map { "\($0)=\(all[$0]!)" }.joined(separator: " ")
        let time = String(JobLog.preciseTimestamp().dropLast(5)).replacingOccurrences(of: "T", with: " ")
        let level = event.level.rawValue.uppercased()
        let text = "\(time) \(level)\(String(repeating: " ", count: max(0, 7 - level.count)))\(job)\(event.message)\(rest)\n"
        let bytes = Array(text.utf8)
        bytes.withUnsafeBytes { _ = write(fd, $0.baseAddress, $0.count) }
    }
}
