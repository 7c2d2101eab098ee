using System.CommandLine;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;
using WinTok.Cli.Display;
using WinTok.Cli.Hosting;
using WinTok.Jobs;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok jobs list | show | cancel | retry`: the jobs of the results database, PostgreSQL (WINTOK_POSTGRES) by
/// default, the SQLite file of an embedded job with <c>--db</c>, else the newest local database (a local run's or the
/// one-machine worker's ~/.wintok/results.db, <see cref="LocalDatabases"/>).
/// </summary>
internal static class JobsCommand
{
    private static readonly TimeSpan FollowInterval = TimeSpan.FromSeconds(2);

    public static Command Create() => new("jobs", "List, inspect, cancel and retry jobs.")
    {
        CreateList(),
        CreateShow(),
        CreateCancel(),
        CreateRetry(),
    };

    public static Option<string?> DatabaseOption() => new("--db")
    {
        Description = $"SQLite results database of a local job (OUTPUT/{LocalJob.StateFolder}/results.db); default: PostgreSQL from WINTOK_POSTGRES.",
    };

    /// <summary>The settings that point the results store at <paramref name="database"/>, when one is given.</summary>
    public static Dictionary<string, string?> DatabaseSettings(string? database)
    {
        var settings = new Dictionary<string, string?>();
        if (database is not null)
        {
            var path = Path.GetFullPath(database);
            settings["ResultsDatabase:Provider"] = "Sqlite";
            settings["ResultsDatabase:ConnectionString"] = $"Data Source={path}";
        }
        return settings;
    }

    private static Command CreateList()
    {
        var status = new Option<string?>("--status") { Description = "Only jobs in this state." }
            .AcceptOnlyFromAmong(JobStatus.Queued, JobStatus.Running, JobStatus.Succeeded, JobStatus.Failed, JobStatus.Cancelled);
        var limit = new Option<int>("--limit") { Description = "At most this many jobs, newest first.", DefaultValueFactory = _ => 20 };
        var database = DatabaseOption();
        var command = new Command("list", "List jobs, newest first.") { status, limit, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            if (parse.GetValue(limit) < 1) return ExitCodes.Usage($"--limit must be at least 1, got {parse.GetValue(limit)}");
            var jobs = await services.GetRequiredService<ResultsRepository>().ListJobsAsync(parse.GetValue(limit), parse.GetValue(status), token);
            JobReport.WriteJobs(CliConsole.Create(), jobs);
            return ExitCodes.Success;
        }, cancellationToken));
        return command;
    }

    private static Command CreateShow()
    {
        var id = JobIdArgument();
        var follow = new Option<bool>("--follow") { Description = "Refresh every 2 s until the job ends." };
        var database = DatabaseOption();
        var command = new Command("show", "Show a job: counts and its partitions.") { id, follow, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            var results = services.GetRequiredService<ResultsRepository>();
            if (await ResolveAsync(results, parse.GetValue(id)!, token) is not { } jobId) return ExitCodes.BadArguments;
            var console = CliConsole.Create();
            while (true)
            {
                var job = await results.GetJobProgressAsync(jobId, token);
                if (job is null) return ExitCodes.Usage($"there is no job {jobId}");
                var partitions = await results.ListPartitionsAsync(jobId, token);
                if (parse.GetValue(follow) && !Console.IsOutputRedirected) console.Clear();
                JobReport.WriteJob(console, job, partitions);
                if (!parse.GetValue(follow) || EmbeddedJobRunner.IsFinished(job.Status))
                    return job.Status is JobStatus.Failed or JobStatus.Cancelled ? ExitCodes.Failed : ExitCodes.Success;
                await Task.Delay(FollowInterval, token);
            }
        }, cancellationToken));
        return command;
    }

    private static Command CreateCancel()
    {
        var id = JobIdArgument();
        var database = DatabaseOption();
        var command = new Command("cancel", "Cancel a job: running partitions stop after their current batch; committed shards stay.") { id, database };
        command.SetAction((parse, cancellationToken) => RunAsync(parse.GetValue(database), async (services, token) =>
        {
            var results = services.GetRequiredService<ResultsRepository>();
            if (await ResolveAsync(results, parse.GetValue(id)!, token) is not { } jobId) return ExitCodes.BadArguments;
            if (await results.CancelJobAsync(jobId, token))
            {
                Console.WriteLine($"Cancelled job {jobId}.");
                return ExitCodes.Success;
            }
            var job = await results.GetJobAsync(jobId, token);
            if (job is null) return ExitCodes.Usage($"there is no job {jobId}");
            Console.Error.WriteLine($"wintok: job {jobId} has already ended ({job.Status})");
            return ExitCodes.Failed;
        }, cancellationToken));
        return command;
    }

    private static Command CreateRetry()
    {
        var id = JobIdArgument();
        var database = DatabaseOption();
        var verbose = new Option<bool>("--verbose") { Description = "Log every stage to stderr (with --db)." };
        var command = new Command("retry",
            "Re-run what a failed or cancelled job did not finish: publish it to the workers or, with --db, run it in this process.")
        {
            id, database, verbose,
        };
        command.SetAction((parse, cancellationToken) => RetryAsync(parse.GetValue(id)!, parse.GetValue(database), parse.GetValue(verbose), cancellationToken));
        return command;
    }

    /// <summary>
    /// A job of the workers is republished to RabbitMQ. A local job (<c>--db</c>) has no workers, so this process runs
    /// the reopened partitions itself, as <c>wintok tokenize</c> would, and waits for the job to end. Partitions a dead
    /// local run still holds (its process is gone) are reopened at once, without waiting out their leases.
    /// </summary>
    internal static async Task<int> RetryAsync(string id, string? database, bool verbose, CancellationToken cancellationToken,
        Func<IServiceProvider, Guid, Func<CancellationToken, Task<string?>>>? detail = null)
    {
        if (database is not null && !File.Exists(database)) return ExitCodes.Usage($"results database {database} does not exist");
        database = LocalDatabases.Resolve(database);
        var settings = DatabaseSettings(database);
        var embedded = database is not null;
        if (embedded) settings["JobQueue:Transport"] = "InProcess";
        var builder = WinTokHost.CreateBuilder(verbose ? Verbosity.Normal : Verbosity.Quiet, settings);
        if (WinTokHost.NoDatabaseProblem(builder) is { } problem) return ExitCodes.Usage(problem);
        if (embedded)
        {
            builder.AddWinTokWorker(healthFile: false);
            builder.AddEmbeddedJobRunner();
        }
        else
        {
            builder.AddResultsStore();
            builder.AddJobQueue();
            builder.AddJobControl();
        }
        using var host = builder.Build();
        Guid? ranHere = null;
        var exitCode = await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            var results = services.GetRequiredService<ResultsRepository>();
            if (await ResolveAsync(results, id, token) is not { } jobId) return ExitCodes.BadArguments;
            var deadWorkers = embedded ? LocalWorkers.Gone((await results.ListPartitionsAsync(jobId, token)).Select(p => p.Worker)) : [];
            IReadOnlyList<int> reopened;
            await using (var scope = services.CreateAsyncScope())
            {
                reopened = await scope.ServiceProvider.GetRequiredService<JobControl>().RetryAsync(jobId, token, deadWorkers);
            }
            if (reopened.Count == 0)
            {
                Console.Error.WriteLine($"wintok: job {jobId} is not failed or cancelled, or has nothing left to redo");
                return ExitCodes.Failed;
            }
            Console.WriteLine($"Retrying {reopened.Count} partitions of job {jobId}: {string.Join(", ", reopened)}");
            if (!embedded) return ExitCodes.Success;

            ranHere = jobId;
            var progress = await services.GetRequiredService<EmbeddedJobRunner>()
                .WaitAsync(jobId, ProgressDisplay.Create(CliConsole.Create(), Console.Out), token, detail?.Invoke(services, jobId));
            return progress.Status == JobStatus.Succeeded ? ExitCodes.Success : ExitCodes.Failed;
        }, cancellationToken);

        // As for `wintok tokenize`: summarised once the host has stopped and the last handler has written the manifest.
        if (ranHere is { } ran) await EmbeddedJobRunner.WriteSummaryAsync(host.Services, ran, Path.GetFullPath(database!), Console.Out);
        return exitCode;
    }

    /// <summary>The job a full id or a unique prefix names (as git accepts short hashes); null after saying why not.</summary>
    private static async Task<Guid?> ResolveAsync(ResultsRepository results, string id, CancellationToken cancellationToken)
    {
        if (Guid.TryParse(id, out var full)) return full;
        if (id.Length < 4 || !id.All(c => Uri.IsHexDigit(c) || c == '-'))
        {
            ExitCodes.Usage($"'{id}' is not a job id or the start of one (at least 4 hex digits)");
            return null;
        }
        var matches = await results.FindJobIdsAsync(id, cancellationToken);
        if (matches.Count == 1) return matches[0];
        ExitCodes.Usage(matches.Count == 0 ? $"there is no job {id}" : $"job id {id} is ambiguous ({matches[0]}, {matches[1]}, ...); give more of it");
        return null;
    }

    private static Argument<string> JobIdArgument() => new("ID") { Description = "The job id (printed by submit and tokenize), or a unique start of it." };

    /// <summary>Runs <paramref name="job"/> on a host with only the results store.</summary>
    private static async Task<int> RunAsync(string? database, Func<IServiceProvider, CancellationToken, Task<int>> job, CancellationToken cancellationToken)
    {
        if (database is not null && !File.Exists(database)) return ExitCodes.Usage($"results database {database} does not exist");
        var builder = WinTokHost.CreateBuilder(Verbosity.Quiet, DatabaseSettings(LocalDatabases.Resolve(database)));
        if (WinTokHost.NoDatabaseProblem(builder) is { } problem) return ExitCodes.Usage(problem);
        builder.AddResultsStore();
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, job, cancellationToken);
    }
}
