import Foundation
import Logging

/// Entry points shared by the `learngene` commands.
public enum PipelineSetup {
    /// The root folder: `--root`, else `$LEARNGENE_ROOT`, else the current folder (so that in a
    /// checkout, the repository's own `Inbox/` is the inbox).
    public static func root(_ option: String?) -> SpoolLayout {
        if let option, !option.isEmpty { return SpoolLayout(root: option) }
        if let env = ProcessInfo.processInfo.environment["LEARNGENE_ROOT"], !env.isEmpty { return SpoolLayout(root: env) }
        return SpoolLayout(root: FileManager.default.currentDirectoryPath)
    }

    /// The stages this build runs.
    public static var registry: StageRegistry { StageRegistry([PretrainStage(), EvaluateStage(), FinetuneStage(), CondenseStage(), InitStage(), CreTokStage()]) }

    private static let bootstrapOnce: Void = {
        LoggingSystem.bootstrap { label in
            var h = PlainLogHandler(label: label)
            h.logLevel = ProcessInfo.processInfo.environment["LEARNGENE_LOG_LEVEL"].flatMap(Logger.Level.init(rawValue:)) ?? .info
            return h
        }
    }()

    /// Plain-text logging to standard error (call once, from a command).
    public static func logger(_ label: String = "learngene") -> Logger {
        _ = bootstrapOnce
        return Logger(label: label)
    }
}
