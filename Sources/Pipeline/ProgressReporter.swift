import Foundation

/// Training progress: a log line every `logEvery` steps (step, loss, images/s, ETA), the job's
/// `status.json` (for `learngene status`), systemd's STATUS= line, and the watchdog heartbeat.
public final class ProgressReporter: @unchecked Sendable {
    public let job: String
    public let stage: String
    public let statusPath: String?
    public let log: JobLog
    public let notifier: SystemdNotifier?
    public let logEvery: Int
    private let startedAt = Date()
    private var phase = "starting"
    private var lastStatusWrite = -Double.infinity
    /// Steps and time since this process started the job (ETA uses the current speed).
    private var firstStep: Int?
    private var firstTime = 0.0
    private var windowStep = 0
    private var windowTime = 0.0
    private var windowImages = 0
    public private(set) var imagesPerSecond = 0.0
    public private(set) var lastLoss: Double?
    public private(set) var step = 0
    public private(set) var totalSteps = 0

    public init(job: String, stage: String, statusPath: String?, log: JobLog, notifier: SystemdNotifier?, logEvery: Int) {
        self.job = job
        self.stage = stage
        self.statusPath = statusPath
        self.log = log
        self.notifier = notifier
        self.logEvery = max(1, logEvery)
    }

    /// A named phase ("loading data", "training", "sampling", "writing outputs").
    public func setPhase(_ name: String, step: Int? = nil, total: Int? = nil) {
        phase = name
        if let step { self.step = step }
        if let total { totalSteps = total }
        log.event("phase", "\(name)", [("phase", .string(name))])
        writeStatus(force: true)
        notifier?.status("\(job): \(name)", force: true)
        notifier?.heartbeat()
    }

    /// Keeps the watchdog fed during long work that is not training steps.
    public func heartbeat() { notifier?.heartbeat() }

    private var lastWorkLine = -Double.infinity

    /// Progress of long work that is not training (sampling, feature extraction): feeds the
    /// watchdog, and logs "what done/total, ETA" at most every 5 s and at the end. `since`
    /// is the work's start (`SystemdNotifier.monotonic()`), for the rate.
    public func work(_ what: String, done: Int, total: Int, since start: Double) {
        notifier?.heartbeat()
        let now = SystemdNotifier.monotonic()
        guard done >= total || now - lastWorkLine >= 5 else { return }
        lastWorkLine = now
        let elapsed = now - start
        let eta: Double? = done > 0 && elapsed > 0 ? Double(total - done) * elapsed / Double(done) : nil
        let message = "\(what) \(done)/\(total)  ETA \(ProgressReporter.duration(eta))"
        log.event("work-progress", message, [("what", .string(what)), ("done", .int(done)), ("total", .int(total)),
                                              ("eta_seconds", eta.map { .double($0.rounded()) } ?? .null)])
        phase = message
        writeStatus(force: false)
        notifier?.status("\(job): \(message)")
    }

    /// Call after each optimizer step.
    public func trainingStep(_ step: Int, of total: Int, loss: Double, images: Int, extra: [(String, JSONValue)] = []) {
        let now = SystemdNotifier.monotonic()
        if firstStep == nil {
            firstStep = step - 1
            firstTime = now
            windowStep = step - 1
            windowTime = now
        }
        self.step = step
        totalSteps = total
        lastLoss = loss
        windowImages += images
        notifier?.heartbeat()
        let elapsed = now - windowTime
        if step % logEvery == 0 || step == total {
            if elapsed > 0 { imagesPerSecond = Double(windowImages) / elapsed }
            let eta = etaSeconds(now: now)
            let message = String(format: "step %d/%d loss %.4f  %.1f images/s  ETA %@", step, total, loss, imagesPerSecond,
                                 ProgressReporter.duration(eta))
            log.event("progress", message, [("step", .int(step)), ("total_steps", .int(total)), ("loss", .double(loss)),
                                             ("images_per_second", .double(imagesPerSecond)),
                                             ("eta_seconds", eta.map { .double($0.rounded()) } ?? .null)] + extra)
            notifier?.status("\(job): \(stage) step \(step)/\(total), loss \(String(format: "%.4f", loss)), ETA \(ProgressReporter.duration(eta))")
            windowStep = step
            windowTime = now
            windowImages = 0
        }
        writeStatus(force: false)
    }

    func etaSeconds(now: Double) -> Double? {
        guard let first = firstStep, step > first, now > firstTime else { return nil }
        let rate = Double(step - first) / (now - firstTime)
        return rate > 0 ? Double(totalSteps - step) / rate : nil
    }

    /// The content of `status.json`.
    public func statusJSON(state: String = "running") -> JSONValue {
        let eta = etaSeconds(now: SystemdNotifier.monotonic())
        return .object([
            ("job", .string(job)), ("stage", .string(stage)), ("state", .string(state)), ("phase", .string(phase)),
            ("step", .int(step)), ("total_steps", .int(totalSteps)),
            ("loss", lastLoss.map { .double($0) } ?? .null), ("images_per_second", .double((imagesPerSecond * 10).rounded() / 10)),
            ("eta_seconds", eta.map { .double($0.rounded()) } ?? .null),
            ("started_at", .string(Timestamp.string(startedAt))), ("updated_at", .string(Timestamp.now())),
            ("pid", .int(Int(getpid()))), ("host", .string(FileOps.hostName)),
        ])
    }

    public func writeStatus(force: Bool, state: String = "running") {
        guard let statusPath else { return }
        let now = SystemdNotifier.monotonic()
        guard force || now - lastStatusWrite >= 1 else { return }
        lastStatusWrite = now
        FileOps.writeQuickly(statusJSON(state: state).pretty, to: statusPath)
    }

    /// "3m12s", "1h05m", "—".
    public static func duration(_ seconds: Double?) -> String {
        guard let s = seconds, s.isFinite, s >= 0 else { return "—" }
        let t = Int(s.rounded())
        if t < 60 { return "\(t)s" }
        if t < 3600 { return String(format: "%dm%02ds", t / 60, t % 60) }
        return String(format: "%dh%02dm", t / 3600, (t % 3600) / 60)
    }
}
