using System.CommandLine;

namespace WinTok.Cli.Commands;

/// <summary>`wintok metrics`: evaluation results in the results database. (Minimal: holds `trend`; `list` and `compare` join it.)</summary>
internal static class MetricsCommand
{
    public static Command Create() => new("metrics", "Evaluation results: trends over training and time.")
    {
        MetricsTrendCommand.Create(),
    };
}
