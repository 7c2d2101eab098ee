using System.CommandLine;
using System.Globalization;
using System.Security.Cryptography;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;
using WinTok.Cli.Display;
using WinTok.Cli.Hosting;
using WinTok.Jobs.Evaluate;
using WinTok.Results;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok metrics list | compare`: the evaluations of the results database (PostgreSQL from WINTOK_POSTGRES, the
/// SQLite file of a local evaluation with <c>--db</c>, else the one-machine worker's ~/.wintok/results.db if it exists).
/// </summary>
internal static class MetricsCommand
{
    public static Command Create() => new("metrics", "Evaluation results: list them, compare two checkpoints, follow a trend.")
    {
        CreateList(),
        CreateCompare(),
        MetricsTrendCommand.Create(),
    };

    private static Command CreateList()
    {
        var checkpoint = new Option<string?>("--checkpoint") { Description = "A checkpoint file, its sha256 (or a start of it), or a path prefix (a training run's folder)." };
        var dataset = new Option<string?>("--dataset") { Description = "Only this dataset name." };
        var schedule = new Option<string?>("--schedule") { Description = "Only evaluations this schedule submitted." };
        var limit = new Option<int>("--limit") { Description = "At most this many, newest.", DefaultValueFactory = _ => 50 };
        var database = JobsCommand.DatabaseOption();
        var command = new Command("list", "List evaluations with their metrics, oldest first.") { checkpoint, dataset, schedule, limit, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            if (parse.GetValue(limit) < 1) return ExitCodes.Usage($"--limit must be at least 1, got {parse.GetValue(limit)}");
            var filter = await FilterAsync(parse.GetValue(checkpoint), token) with
            {
                DatasetName = parse.GetValue(dataset),
                ScheduleName = parse.GetValue(schedule),
                Limit = parse.GetValue(limit),
            };
            var found = await services.GetRequiredService<EvaluationsRepository>().ListAsync(filter, token);
            WriteList(CliConsole.Create(), found);
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreateCompare()
    {
        var first = new Argument<string>("CKPT_A") { Description = "A checkpoint file or its sha256 (or a start of it)." };
        var second = new Argument<string>("CKPT_B") { Description = "The other checkpoint." };
        var dataset = new Option<string?>("--dataset") { Description = "Compare on this dataset (default: the newest evaluation both share)." };
        var database = JobsCommand.DatabaseOption();
        var command = new Command("compare", "Put two checkpoints' newest comparable evaluations side by side.") { first, second, dataset, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            var repository = services.GetRequiredService<EvaluationsRepository>();
            var a = await repository.ListAsync(await FilterAsync(parse.GetValue(first), token) with { DatasetName = parse.GetValue(dataset) }, token);
            var b = await repository.ListAsync(await FilterAsync(parse.GetValue(second), token) with { DatasetName = parse.GetValue(dataset) }, token);
            if (a.Count == 0) return ExitCodes.Usage($"no evaluation of {parse.GetValue(first)}");
            if (b.Count == 0) return ExitCodes.Usage($"no evaluation of {parse.GetValue(second)}");
            // The newest pair measured the same way: same dataset, same protocol.
            var pair = a.AsEnumerable().Reverse()
                .SelectMany(x => b.AsEnumerable().Reverse().Where(y => y.DatasetName == x.DatasetName && y.Protocol == x.Protocol).Select(y => (x, y)))
                .FirstOrDefault();
            if (pair.x is null)
                return ExitCodes.Usage("the two checkpoints have no evaluation on the same dataset under the same protocol; evaluate both the same way first");
            WriteComparison(CliConsole.Create(), pair.x, pair.y);
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    /// <summary>A checkpoint argument as a filter: an existing file by its content hash, hex digits as a hash prefix, anything else as a path prefix.</summary>
    private static async Task<EvaluationFilter> FilterAsync(string? checkpoint, CancellationToken cancellationToken)
    {
        if (checkpoint is null) return new EvaluationFilter();
        if (File.Exists(checkpoint))
        {
            await using var file = File.OpenRead(checkpoint);
            return new EvaluationFilter(CheckpointSha256: Convert.ToHexStringLower(await SHA256.HashDataAsync(file, cancellationToken)));
        }
        if (checkpoint.Length >= 6 && checkpoint.All(Uri.IsHexDigit)) return new EvaluationFilter(CheckpointSha256: checkpoint);
        return new EvaluationFilter(CheckpointPathPrefix: checkpoint);
    }

    private static void WriteList(IAnsiConsole console, IReadOnlyList<EvaluationRecord> evaluations)
    {
        if (evaluations.Count == 0)
        {
            console.WriteLine("No evaluations.");
            return;
        }
        var metrics = MetricDirections.Sorted(evaluations.SelectMany(e => e.Metrics.Keys)).ToList();
        var table = new Table().AddColumns("when", "job", "checkpoint", "dataset", "images");
        foreach (var metric in metrics) table.AddColumn(new TableColumn(metric).RightAligned());
        foreach (var e in evaluations)
        {
            table.AddRow([
                Markup.Escape(e.CreatedAt.ToString("yyyy-MM-dd HH:mm", CultureInfo.InvariantCulture)), e.JobId.ToString()[..8],
                Markup.Escape($"{Path.GetFileName(e.CheckpointPath)}@{e.CheckpointSha256[..8]}"), Markup.Escape(e.DatasetName),
                e.ImageCount.ToString(CultureInfo.InvariantCulture),
                .. metrics.Select(m => e.Metrics.TryGetValue(m, out var v) ? Format(v) : "-"),
            ]);
        }
        console.Write(table);
    }

    private static void WriteComparison(IAnsiConsole console, EvaluationRecord a, EvaluationRecord b)
    {
        console.WriteLine($"dataset {a.DatasetName}, protocol {a.Protocol}");
        var table = new Table()
            .AddColumn("metric")
            .AddColumn(new TableColumn(Markup.Escape($"A: {Path.GetFileName(a.CheckpointPath)}@{a.CheckpointSha256[..8]} ({a.ModelKind})")).RightAligned())
            .AddColumn(new TableColumn(Markup.Escape($"B: {Path.GetFileName(b.CheckpointPath)}@{b.CheckpointSha256[..8]} ({b.ModelKind})")).RightAligned())
            .AddColumn(new TableColumn("B - A").RightAligned())
            .AddColumn("better");
        foreach (var metric in MetricDirections.Sorted(a.Metrics.Keys.Concat(b.Metrics.Keys)))
        {
            var hasA = a.Metrics.TryGetValue(metric, out var va);
            var hasB = b.Metrics.TryGetValue(metric, out var vb);
            var better = !(hasA && hasB) || va == vb ? "" : (vb < va) == MetricDirections.LowerIsBetter(metric) ? "B" : "A";
            table.AddRow(metric, hasA ? Format(va) : "-", hasB ? Format(vb) : "-", hasA && hasB ? Format(vb - va) : "-", better);
        }
        console.Write(table);
    }

    private static string Format(double value) => value.ToString("G6", CultureInfo.InvariantCulture);

    private static async Task<int> RunAsync(string? database, Func<IServiceProvider, CancellationToken, Task<int>> job, CancellationToken cancellationToken)
    {
        if (database is not null && !File.Exists(database)) return ExitCodes.Usage($"results database {database} does not exist");
        var builder = WinTokHost.CreateBuilder(Verbosity.Quiet, JobsCommand.DatabaseSettings(LocalDatabases.Resolve(database)));
        if (WinTokHost.NoDatabaseProblem(builder) is { } problem) return ExitCodes.Usage(problem);
        builder.AddResultsStore();
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, job, cancellationToken);
    }
}
