using System.CommandLine;
using System.Globalization;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Jobs.Train;
using WinTok.Results;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok train CONFIG`: a whole training run in this process on the embedded defaults (<see cref="LocalJob"/>), with
/// its progress (iteration, losses, images/s, ETA). The same command again on an interrupted run's output continues it
/// from its newest checkpoint. Exit code 0 when the run finished, 1 when it failed or was cancelled, 2 on a bad
/// configuration (every problem named).
/// </summary>
internal static class TrainCommand
{
    public static Command Create()
    {
        var config = new Argument<string>("CONFIG") { Description = "The training configuration (JSON; the reference's Args names plus ours; see docs/training.md)." };
        var database = new Option<string?>("--db")
        {
            Description = $"SQLite results database (default: OUTPUT/{LocalJob.StateFolder}/results.db).",
        };
        var verbose = new Option<bool>("--verbose") { Description = "Log what the run does (information level) to stderr." };
        var command = new Command("train", "Train WinTok from a configuration file, in this process (resumes an interrupted run of the same output).")
        {
            config, database, verbose,
        };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(config)!, parse.GetValue(database), parse.GetValue(verbose), cancellationToken));
        return command;
    }

    /// <summary>Reads and checks a configuration file; prints every problem and returns null when it has any.</summary>
    internal static TrainConfig? Read(string path)
    {
        if (!File.Exists(path))
        {
            ExitCodes.Usage($"configuration {path} does not exist");
            return null;
        }
        try
        {
            var config = TrainConfig.Parse(File.ReadAllText(path), Path.GetDirectoryName(Path.GetFullPath(path)));
            if (config.Ignored.Count > 0)
                Console.Error.WriteLine($"wintok: note: the trainer does not use {string.Join(", ", config.Ignored)} (see docs/training.md)");
            return config;
        }
        catch (ArgumentException e)
        {
            ExitCodes.Usage($"{path}: {e.Message}");
            return null;
        }
    }

    private static async Task<int> RunAsync(string path, string? database, bool verbose, CancellationToken cancellationToken)
    {
        if (Read(path) is not { } config) return ExitCodes.BadArguments;
        var settings = new Dictionary<string, string?>();
        if (config.Device != "auto") settings["Model:Device"] = config.Device;
        var db = Path.GetFullPath(database ?? LocalJob.DefaultDatabase(config.Output));
        if (RunFiles.HoldsRun(config.Output) is not null && File.Exists(db))
            return await ResumeAsync(config, db, verbose, cancellationToken);

        return await LocalJob.RunAsync(config.Output, database, settings, verbose,
            (services, token) => services.GetRequiredService<TrainJobSubmitter>().PlanAsync(config, token),
            (services, plan, token) => services.GetRequiredService<TrainJobSubmitter>().SubmitAsync(plan, token),
            (plan, job) => string.Create(CultureInfo.InvariantCulture,
                $"Job {job.JobId}: training {plan.Spec.MaxIterations:N0} iterations ({plan.Spec.TrainNumSamples:N0} images x {plan.Spec.MaxIterations / Math.Max(1, plan.Spec.IterationsPerEpoch)} epochs " +
                $"in batches of {plan.Spec.LocalBatch}, seed {plan.Spec.Seed}) -> {config.Output}"),
            cancellationToken, Progress, WaitForEvaluationsAsync);
    }

    /// <summary>
    /// The evaluation jobs the run submitted run on this process's in-process queue, which ends with it: wait for them
    /// before the process stops, so their numbers are recorded (`wintok metrics list --db ...`).
    /// </summary>
    internal static async Task WaitForEvaluationsAsync(IServiceProvider services, Guid trainJob, CancellationToken cancellationToken)
    {
        var results = services.GetRequiredService<ResultsRepository>();
        var record = (await results.ListPartitionsAsync(trainJob, cancellationToken)).FirstOrDefault()?.ResultJson;
        if (record is null) return;
        using var document = System.Text.Json.JsonDocument.Parse(record);
        if (!document.RootElement.TryGetProperty("evaluations", out var evaluations)) return;
        foreach (var id in evaluations.EnumerateArray().Select(e => Guid.Parse(e.GetString()!)))
        {
            Console.WriteLine($"Waiting for evaluation job {id}");
            var progress = await services.GetRequiredService<Display.EmbeddedJobRunner>()
                .WaitAsync(id, Display.ProgressDisplay.Create(CliConsole.Create(), Console.Out), cancellationToken);
            Console.WriteLine($"Evaluation job {id}: {progress.Status}");
        }
    }

    /// <summary>The run in <paramref name="database"/> that owns the output: finished (say so), or continued from its newest checkpoint.</summary>
    private static async Task<int> ResumeAsync(TrainConfig config, string database, bool verbose, CancellationToken cancellationToken)
    {
        var builder = WinTokHost.CreateBuilder(Verbosity.Quiet, JobsCommand.DatabaseSettings(database));
        builder.AddResultsStore();
        Guid? jobId = null;
        string? status = null;
        using (var host = builder.Build())
        {
            var exit = await WinTokHost.RunJobAsync(host, async (services, token) =>
            {
                var results = services.GetRequiredService<ResultsRepository>();
                foreach (var job in await results.ListJobsAsync(50, null, token))
                {
                    if (job.Kind != TrainJobSpec.JobKind || await results.GetJobAsync(job.Id, token) is not { } record) continue;
                    if (Path.GetFullPath(TrainJobSpec.FromJson(record.SpecJson).Output) != Path.GetFullPath(config.Output)) continue;
                    (jobId, status) = (job.Id, job.Status);
                    // A run killed outright still reads running: its process is gone, so its lease may go at once.
                    if (job.Status is JobStatus.Running or JobStatus.Queued
                        && LocalWorkers.Gone((await results.ListPartitionsAsync(job.Id, token)).Select(p => p.Worker)).Count > 0)
                    {
                        await results.CancelJobAsync(job.Id, token);
                        status = JobStatus.Cancelled;
                    }
                    break;
                }
                return ExitCodes.Success;
            }, cancellationToken);
            if (exit != ExitCodes.Success) return exit;
        }
        if (jobId is not { } id)
            return ExitCodes.Usage($"output {config.Output} holds a run that {database} does not know; choose another output");
        if (status == JobStatus.Succeeded)
        {
            Console.WriteLine($"Job {id} already trained {config.Output} to its end (wintok jobs show {id} --db {database}).");
            return ExitCodes.Success;
        }
        Console.WriteLine($"Continuing job {id} from its newest checkpoint in {config.Output}");
        return await JobsCommand.RetryAsync(id.ToString(), database, verbose, cancellationToken, Progress);
    }

    /// <summary>The line beside the progress bar: the newest recorded iteration and its losses.</summary>
    internal static Func<CancellationToken, Task<string?>> Progress(IServiceProvider services, Guid jobId) => async token =>
    {
        var metrics = services.GetRequiredService<TrainingMetricsRepository>();
        if (await metrics.LatestAsync(jobId, token) is not { } latest) return "loading the networks";
        var v = latest.Values;
        string Value(string name) => v.TryGetValue(name, out var x) ? x.ToString("G4", CultureInfo.InvariantCulture) : "-";
        return $"iteration {latest.Iteration + 1:N0}: Lnll {Value("Lnll")}, Lv {Value("LvTotal")}, Ld {Value("LdTotal")}, lr {Value("lr")}";
    };
}
