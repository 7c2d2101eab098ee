using System.Globalization;
using Azure.Storage.Blobs;
using Spectre.Console;
using WinTok.Data.Corpus;
using WinTok.Data.Shards;
using WinTok.Jobs.Evaluate;
using WinTok.Jobs.Tokenize;
using WinTok.Jobs.Train;
using WinTok.Results;

namespace WinTok.Cli.Display;

/// <summary>What the job verbs print about a job: the closing summary, the partitions table, the jobs list.</summary>
internal static class JobReport
{
    /// <summary>Errors files and failed partitions named in a summary; the manifest and `jobs show` have the rest.</summary>
    private const int MaxListed = 5;

    /// <summary>Rows, shards and failures; where the manifest and the errors files are; why a job did not succeed.</summary>
    public static async Task WriteSummaryAsync(TextWriter output, JobProgress job, ResultsRepository results, EvaluationsRepository evaluations,
        BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        var record = await results.GetJobAsync(job.Id, cancellationToken);
        var spec = record?.Kind == TokenizeJobSpec.JobKind ? TokenizeJobSpec.FromJson(record.SpecJson) : null;
        var took = (job.FinishedAt ?? DateTimeOffset.UtcNow) - (job.StartedAt ?? job.CreatedAt);
        output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"Job {job.Id} {job.Status} in {took.TotalSeconds:F1}s"));
        if (record?.Kind == EvaluateJobSpec.JobKind)
        {
            await WriteEvaluationSummaryAsync(output, job, EvaluateJobSpec.FromJson(record.SpecJson), evaluations, blobService, cancellationToken);
        }
        else if (record?.Kind == TrainJobSpec.JobKind)
        {
            await WriteTrainingSummaryAsync(output, job, TrainJobSpec.FromJson(record.SpecJson), results, cancellationToken);
        }
        else
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture,
                $"  rows:      {job.Rows:N0} in {job.Committed} of {job.Partitions} shards ({Size(job.Bytes)})"));
            output.WriteLine($"  failures:  {job.ItemFailures} {(job.ItemFailures == 1 ? "image" : "images")} could not be read or tokenized");
        }

        if (spec is not null && job.Status == JobStatus.Succeeded)
        {
            var dataset = FileStores.Open(spec.Output, blobService);
            if (await dataset.GetInfoAsync(DatasetManifest.FileName, cancellationToken) is null)
            {
                // The job is marked succeeded just before its last worker writes the manifest.
                output.WriteLine($"  manifest:  not written yet: {dataset.Describe(DatasetManifest.FileName)}");
                return;
            }
            var manifest = await DatasetManifest.ReadAsync(dataset, cancellationToken);
            output.WriteLine($"  manifest:  {dataset.Describe(DatasetManifest.FileName)}");
            var withFailures = manifest.Shards.Where(s => s.Failures > 0).ToList();
            foreach (var shard in withFailures.Take(MaxListed))
            {
                output.WriteLine($"  errors:    {dataset.Describe(shard.ErrorsPath)} ({shard.Failures} {(shard.Failures == 1 ? "record" : "records")})");
            }
            if (withFailures.Count > MaxListed)
                output.WriteLine($"  errors:    ... and {withFailures.Count - MaxListed} more errors files, all listed in the manifest");
        }
        if (job.Status != JobStatus.Succeeded)
        {
            if (job.Error is { Length: > 0 } error) output.WriteLine($"  error:     {error}");
            var partitions = await results.ListPartitionsAsync(job.Id, cancellationToken);
            foreach (var failed in partitions.Where(p => p.Status == PartitionStatus.Failed).Take(MaxListed))
            {
                output.WriteLine($"  partition {failed.Partition} failed: {failed.Error}");
            }
        }
    }

    /// <summary>An evaluation's numbers and where its files are.</summary>
    private static async Task WriteEvaluationSummaryAsync(TextWriter output, JobProgress job, EvaluateJobSpec spec, EvaluationsRepository evaluations,
        BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  images:    {job.Rows:N0} evaluated in {job.Committed} of {job.Partitions} partitions; {job.ItemFailures} could not be read"));
        if (await evaluations.GetAsync(job.Id, cancellationToken) is { } evaluation)
        {
            foreach (var metric in MetricDirections.Sorted(evaluation.Metrics.Keys))
                output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  {metric + ":",-18}{evaluation.Metrics[metric]:G6}"));
        }
        var folder = FileStores.Open(spec.Output, blobService);
        output.WriteLine($"  metrics:   {folder.Describe("metrics.json")}");
        output.WriteLine($"  per image: {folder.Describe("per_image/")}");
        output.WriteLine($"  grid:      {folder.Describe("grid.png")}");
    }

    /// <summary>How far a training run went, its last checkpoint and losses, the evaluations it submitted.</summary>
    private static async Task WriteTrainingSummaryAsync(TextWriter output, JobProgress job, TrainJobSpec spec, ResultsRepository results,
        CancellationToken cancellationToken)
    {
        var partition = (await results.ListPartitionsAsync(job.Id, cancellationToken)).FirstOrDefault();
        if (partition?.ResultJson is not { } json)
        {
            output.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  trained:    about {job.ItemsDone / Math.Max(1, spec.LocalBatch):N0} of {spec.MaxIterations:N0} iterations"));
            output.WriteLine($"  output:     {spec.Output} (the newest checkpoint there is where the run continues: wintok jobs retry {job.Id})");
            return;
        }
        using var record = System.Text.Json.JsonDocument.Parse(json);
        var root = record.RootElement;
        output.WriteLine(string.Create(CultureInfo.InvariantCulture,
            $"  trained:    {root.GetProperty("iterations").GetInt64():N0} of {spec.MaxIterations:N0} iterations, {root.GetProperty("images").GetInt64():N0} images; {job.ItemFailures} unreadable inputs skipped"));
        output.WriteLine($"  output:     {spec.Output}");
        output.WriteLine($"  checkpoint: {root.GetProperty("last_checkpoint").GetString()}");
        if (root.TryGetProperty("final", out var final) && final.ValueKind == System.Text.Json.JsonValueKind.Object)
            output.WriteLine("  losses:     " + string.Join(", ", new[] { "L1", "L2", "Lpips", "Lnll", "Lq", "Ldistill", "LvTotal", "LdTotal" }
                .Where(name => final.TryGetProperty(name, out _))
                .Select(name => string.Create(CultureInfo.InvariantCulture, $"{name} {final.GetProperty(name).GetDouble():G5}"))));
        if (root.TryGetProperty("evaluations", out var evaluationJobs) && evaluationJobs.GetArrayLength() > 0)
            output.WriteLine($"  evaluated:  {evaluationJobs.GetArrayLength()} checkpoints (jobs {string.Join(", ", evaluationJobs.EnumerateArray().Select(e => e.GetString()))})");
    }

    /// <summary>A byte count as people read it: KiB below a tenth of a MiB.</summary>
    internal static string Size(long bytes) => bytes < 0.1 * 1024 * 1024
        ? string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0:F1} KiB")
        : string.Create(CultureInfo.InvariantCulture, $"{bytes / 1024.0 / 1024.0:F1} MiB");

    public static void WriteJobs(IAnsiConsole console, IReadOnlyList<JobProgress> jobs)
    {
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("id", "kind", "status", "partitions", "rows", "item failures", "created (UTC)");
        foreach (var job in jobs)
        {
            table.AddRow(job.Id.ToString(), job.Kind, job.Status, $"{job.Committed}/{job.Partitions} ({job.Failed} failed)",
                Number(job.Rows), Number(job.ItemFailures), job.CreatedAt.UtcDateTime.ToString("yyyy-MM-dd HH:mm:ss", CultureInfo.InvariantCulture));
        }
        console.Write(table);
    }

    public static void WriteJob(IAnsiConsole console, JobProgress job, IReadOnlyList<PartitionRecord> partitions)
    {
        console.WriteLine($"Job {job.Id} ({job.Kind}): {job.Status}");
        console.WriteLine($"  partitions: {job.Partitions} total, {job.Committed} committed, {job.Running} running, {job.Pending} pending, {job.Failed} failed");
        console.WriteLine(string.Create(CultureInfo.InvariantCulture, $"  rows: {job.Rows:N0}, bytes: {job.Bytes:N0}, item failures: {job.ItemFailures}"));
        if (job.Error is { Length: > 0 }) console.WriteLine($"  error: {job.Error}");
        var table = new Table().Border(TableBorder.Simple)
            .AddColumns("partition", "status", "attempt", "worker", "rows", "failures", "duration", "error");
        foreach (var partition in partitions)
        {
            table.AddRow(
                Number(partition.Partition), partition.Status, Number(partition.Attempt), Markup.Escape(partition.Worker ?? ""),
                partition.RowCount is { } rows ? Number(rows) : "", Number(partition.FailuresCount),
                partition.DurationMs is { } ms ? string.Create(CultureInfo.InvariantCulture, $"{ms / 1000.0:F1}s") : "",
                Markup.Escape(partition.Error ?? ""));
        }
        console.Write(table);
    }

    private static string Number(long value) => value.ToString("N0", CultureInfo.InvariantCulture);
}
