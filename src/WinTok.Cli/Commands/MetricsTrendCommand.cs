using System.CommandLine;
using System.Globalization;
using System.Text;
using System.Text.Json;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Spectre.Console;
using WinTok.Cli.Hosting;
using WinTok.Data.Corpus;
using WinTok.Jobs.Schedules;
using WinTok.Results;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok metrics trend --schedule NAME | --prefix PATH`: each metric of a schedule's (or a training run's)
/// evaluations over training and over time: a table with one row per evaluation and a sparkline per metric, or CSV
/// and JSON for other tools. Only numbers that compare share a table: one per dataset and protocol.
/// </summary>
internal static class MetricsTrendCommand
{
    public static Command Create()
    {
        var schedule = new Option<string?>("--schedule") { Description = "The evaluations a schedule submitted." };
        var prefix = new Option<string?>("--prefix") { Description = "The evaluations of checkpoints under this folder or blob prefix (a training run)." };
        var dataset = new Option<string?>("--dataset") { Description = "Only this dataset name." };
        var metrics = new Option<string?>("--metric") { Description = "Only these metrics (comma-separated names, e.g. rfid,psnr)." };
        var order = new Option<string>("--by") { Description = "Order by training position (iteration) or by evaluation time.", DefaultValueFactory = _ => "iteration" }
            .AcceptOnlyFromAmong("iteration", "time");
        var format = new Option<string>("--format") { Description = "table (with sparklines), csv or json.", DefaultValueFactory = _ => "table" }
            .AcceptOnlyFromAmong("table", "csv", "json");
        var limit = new Option<int>("--limit") { Description = "At most this many evaluations, the newest.", DefaultValueFactory = _ => 1000 };
        var database = new Option<string?>("--db") { Description = "SQLite results database (default: PostgreSQL from WINTOK_POSTGRES, else ~/.wintok/results.db)." };
        var command = new Command("trend", "Each metric over training iterations and time, as a table with sparklines, CSV or JSON.")
        {
            schedule, prefix, dataset, metrics, order, format, limit, database,
        };
        command.SetAction((parse, cancellationToken) =>
        {
            if ((parse.GetValue(schedule) is null) == (parse.GetValue(prefix) is null)) return Task.FromResult(ExitCodes.Usage("give --schedule or --prefix"));
            if (parse.GetValue(limit) < 1) return Task.FromResult(ExitCodes.Usage("--limit must be at least 1"));
            var pathPrefix = parse.GetValue(prefix) is { } p ? (FileStores.IsBlobLocation(p) ? p : Path.GetFullPath(p)) : null;
            var filter = new EvaluationFilter(CheckpointPathPrefix: pathPrefix, ScheduleName: parse.GetValue(schedule),
                DatasetName: parse.GetValue(dataset), Limit: parse.GetValue(limit));
            var wanted = parse.GetValue(metrics)?.Split(',', StringSplitOptions.TrimEntries | StringSplitOptions.RemoveEmptyEntries).ToHashSet(StringComparer.Ordinal);
            var by = parse.GetValue(order) == "time" ? TrendOrder.Time : TrendOrder.Iteration;
            return RunAsync(parse.GetValue(database), async (services, token) =>
            {
                var evaluations = await services.GetRequiredService<EvaluationsRepository>().ListAsync(filter, token);
                var regressions = (await services.GetRequiredService<SchedulesRepository>().ListRegressionsAsync(
                        new RegressionFilter(ScheduleName: parse.GetValue(schedule), Limit: 100_000), token))
                    .ToLookup(r => r.JobId, r => r.Metric);
                var series = Trend.Series(evaluations, by, wanted);
                switch (parse.GetValue(format))
                {
                    case "csv": WriteCsv(Console.Out, series, regressions); break;
                    case "json": WriteJson(Console.OpenStandardOutput(), series, regressions); break;
                    default:
                        if (series.Count == 0) Console.Error.WriteLine("wintok: no evaluations match");
                        WriteTables(CliConsole.Create(), series, regressions);
                        break;
                }
                return ExitCodes.Success;
            }, cancellationToken);
        });
        return command;
    }

    private static void WriteTables(IAnsiConsole console, IReadOnlyList<TrendSeries> series, ILookup<Guid, string> regressions)
    {
        foreach (var trend in series)
        {
            console.Write(new Rule($"[bold]{Markup.Escape(trend.DatasetName)}[/] · {trend.Evaluations.Count} evaluations").LeftJustified());
            console.MarkupLine($"[grey]protocol {Markup.Escape(trend.Protocol)}[/]");
            var table = new Table().Border(TableBorder.Simple).AddColumns("evaluated (UTC)", "epoch", "iteration", "checkpoint", "sha256");
            foreach (var metric in trend.Metrics) table.AddColumn(new TableColumn(Markup.Escape(metric)).RightAligned());
            table.AddColumn("regressed");
            foreach (var evaluation in trend.Evaluations)
            {
                var regressed = regressions[evaluation.JobId].ToHashSet(StringComparer.Ordinal);
                var cells = new List<string>
                {
                    $"{evaluation.CreatedAt.UtcDateTime:yyyy-MM-dd HH:mm}",
                    evaluation.TrainingEpoch?.ToString(CultureInfo.InvariantCulture) ?? "-",
                    evaluation.TrainingIteration?.ToString(CultureInfo.InvariantCulture) ?? "-",
                    Markup.Escape(FileName(evaluation.CheckpointPath)),
                    evaluation.CheckpointSha256.Length >= 12 ? evaluation.CheckpointSha256[..12] : evaluation.CheckpointSha256,
                };
                cells.AddRange(trend.Metrics.Select(m => evaluation.Metrics.TryGetValue(m, out var v)
                    ? (regressed.Contains(m) ? $"[red]{Number(v)}[/]" : Number(v))
                    : "-"));
                cells.Add(regressed.Count == 0 ? "" : $"[red]{Markup.Escape(string.Join(", ", regressed.Order(StringComparer.Ordinal)))}[/]");
                table.AddRow([.. cells]);
            }
            console.Write(table);
            var lines = new Grid().AddColumn().AddColumn().AddColumn();
            foreach (var metric in trend.Metrics)
            {
                var values = trend.Values(metric);
                var finite = values.Where(v => v is { } x && double.IsFinite(x)).Select(v => v!.Value).ToList();
                var direction = MetricDirection.Known.TryGetValue(metric, out var d) ? $"{d} is better" : "";
                var summary = finite.Count == 0 ? "no values" : $"first {Number(finite[0])}  last {Number(finite[^1])}";
                if (Trend.Best(trend, metric) is { } best)
                    summary += $"  best {Number(best.Value)} ({Position(best.Evaluation)})";
                lines.AddRow(Markup.Escape(metric), Markup.Escape(Trend.Sparkline(values)), Markup.Escape($"{summary}  {direction}"));
            }
            console.Write(lines);
            console.WriteLine();
        }
    }

    private static void WriteCsv(TextWriter output, IReadOnlyList<TrendSeries> series, ILookup<Guid, string> regressions)
    {
        var metrics = series.SelectMany(s => s.Metrics).Distinct(StringComparer.Ordinal).ToList();
        output.WriteLine(string.Join(",", new[] { "job_id", "evaluated_at", "schedule", "dataset", "protocol", "checkpoint_path", "checkpoint_sha256",
            "training_epoch", "training_iteration" }.Concat(metrics).Append("regressed")));
        foreach (var evaluation in series.SelectMany(s => s.Evaluations))
        {
            var fields = new List<string?>
            {
                evaluation.JobId.ToString(), evaluation.CreatedAt.UtcDateTime.ToString("o", CultureInfo.InvariantCulture), evaluation.ScheduleName,
                evaluation.DatasetName, evaluation.Protocol, evaluation.CheckpointPath, evaluation.CheckpointSha256,
                evaluation.TrainingEpoch?.ToString(CultureInfo.InvariantCulture), evaluation.TrainingIteration?.ToString(CultureInfo.InvariantCulture),
            };
            fields.AddRange(metrics.Select(m => evaluation.Metrics.TryGetValue(m, out var v) ? v.ToString("R", CultureInfo.InvariantCulture) : null));
            fields.Add(string.Join(";", regressions[evaluation.JobId].Order(StringComparer.Ordinal)));
            output.WriteLine(string.Join(",", fields.Select(Csv)));
        }
    }

    private static void WriteJson(Stream output, IReadOnlyList<TrendSeries> series, ILookup<Guid, string> regressions)
    {
        using var json = new Utf8JsonWriter(output, new JsonWriterOptions { Indented = true });
        json.WriteStartArray();
        foreach (var trend in series)
        {
            foreach (var evaluation in trend.Evaluations)
            {
                json.WriteStartObject();
                json.WriteString("jobId", evaluation.JobId);
                json.WriteString("evaluatedAt", evaluation.CreatedAt);
                json.WriteString("schedule", evaluation.ScheduleName);
                json.WriteString("dataset", evaluation.DatasetName);
                json.WriteString("protocol", evaluation.Protocol);
                json.WriteStartObject("checkpoint");
                json.WriteString("path", evaluation.CheckpointPath);
                json.WriteString("sha256", evaluation.CheckpointSha256);
                if (evaluation.TrainingEpoch is { } epoch) json.WriteNumber("epoch", epoch); else json.WriteNull("epoch");
                if (evaluation.TrainingIteration is { } iteration) json.WriteNumber("iteration", iteration); else json.WriteNull("iteration");
                json.WriteEndObject();
                json.WriteStartObject("metrics");
                foreach (var metric in trend.Metrics)
                {
                    if (evaluation.Metrics.TryGetValue(metric, out var value) && double.IsFinite(value)) json.WriteNumber(metric, value);
                    else json.WriteNull(metric);
                }
                json.WriteEndObject();
                json.WriteStartArray("regressed");
                foreach (var metric in regressions[evaluation.JobId].Order(StringComparer.Ordinal)) json.WriteStringValue(metric);
                json.WriteEndArray();
                json.WriteEndObject();
            }
        }
        json.WriteEndArray();
        json.Flush();
        output.Write("\n"u8);
    }

    /// <summary>Runs <paramref name="work"/> on a host with only the results store, on the servers or the embedded defaults.</summary>
    private static async Task<int> RunAsync(string? database, Func<IServiceProvider, CancellationToken, Task<int>> work, CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(Verbosity.Quiet);
        EmbeddedDefaults.Apply(builder, database);
        builder.AddResultsStore();
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, work, cancellationToken);
    }

    private static string Csv(string? field) => field is null ? ""
        : field.IndexOfAny([',', '"', '\n', '\r']) >= 0 ? $"\"{field.Replace("\"", "\"\"", StringComparison.Ordinal)}\"" : field;

    private static string FileName(string path) => path[(path.LastIndexOfAny(['/', '\\']) + 1)..];

    private static string Position(EvaluationRecord evaluation) => evaluation.TrainingEpoch is { } e && evaluation.TrainingIteration is { } i
        ? $"ep{e}-iter{i}" : FileName(evaluation.CheckpointPath);

    private static string Number(double value) => double.IsFinite(value) ? value.ToString("0.####", CultureInfo.InvariantCulture) : value.ToString(CultureInfo.InvariantCulture);
}
