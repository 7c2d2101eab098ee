using Microsoft.Extensions.Logging;

namespace WinTok.Dashboard;

/// <summary>Log lines of the dashboard: 8000s (docs/architecture.md lists every project's range). Tokens are never logged.</summary>
internal static partial class Log
{
    [LoggerMessage(8001, LogLevel.Information, "Dashboard reading the {Provider} results database; actions {Actions}")]
    public static partial void Started(ILogger logger, string provider, string actions);

    [LoggerMessage(8002, LogLevel.Warning, "Actions are enabled on a plain HTTP address other than loopback ({Urls}): the token crosses the network in clear; put TLS in front")]
    public static partial void TokenOverPlainHttp(ILogger logger, string urls);

    [LoggerMessage(8010, LogLevel.Information, "Cancelled job {JobId} from the dashboard")]
    public static partial void CancelledJob(ILogger logger, Guid jobId);

    [LoggerMessage(8011, LogLevel.Information, "Retrying {Partitions} partitions of job {JobId} from the dashboard")]
    public static partial void RetriedJob(ILogger logger, Guid jobId, int partitions);

    [LoggerMessage(8020, LogLevel.Warning, "Refused an action on {Path}: {Why}")]
    public static partial void RefusedAction(ILogger logger, string path, string why);

    [LoggerMessage(8021, LogLevel.Information, "Signed in to actions from {Remote}")]
    public static partial void SignedIn(ILogger logger, string? remote);

    [LoggerMessage(8030, LogLevel.Warning, "Could not refresh the dashboard's gauges; keeping the previous values")]
    public static partial void GaugeRefreshFailed(ILogger logger, Exception exception);
}
