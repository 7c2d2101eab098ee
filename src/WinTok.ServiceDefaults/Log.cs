using Microsoft.Extensions.Logging;

namespace WinTok.ServiceDefaults;

/// <summary>
/// Log lines of the shared service defaults: 9000s. Event id ranges of the whole product (docs/architecture.md):
/// 1000s job queue (WinTok.Messaging), 2000s model and GPU (WinTok), 4000s results database (WinTok.Results), 5000s worker
/// handlers (WinTok.Worker), 6000s job control and schedules (WinTok.Jobs), 7000s command line (WinTok.Cli), 8000s
/// dashboard (WinTok.Dashboard), 9000s service defaults.
/// </summary>
internal static partial class Log
{
    [LoggerMessage(9001, LogLevel.Warning, "{Dependency} failed on {Operation}; retry {Attempt} in {DelayMs}ms")]
    public static partial void Retrying(ILogger logger, Exception? exception, string dependency, string operation, int attempt, long delayMs);
}
