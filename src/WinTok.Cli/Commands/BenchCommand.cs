using System.CommandLine;

namespace WinTok.Cli.Commands;

/// <summary>`wintok bench ...`: throughput benchmarks whose figures go into docs/benchmarks.md.</summary>
internal static class BenchCommand
{
    public static Command Create() => new("bench", "Throughput benchmarks (model, preprocessing, end to end).")
    {
        BenchTokenizeCommand.Create(),
        BenchLayersCommand.Create(),
        BenchPipelineCommand.Create(),
        BenchPreprocessCommand.Create(),
    };
}
