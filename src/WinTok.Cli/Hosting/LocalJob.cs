using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Commands;
using WinTok.Cli.Display;
using WinTok.Data.Corpus;
using WinTok.Jobs.Tokenize;
using WinTok.Results;
using WinTok.Worker.Hosting;

namespace WinTok.Cli.Hosting;

/// <summary>
/// A whole job in this process on the embedded defaults (in-process queue, SQLite results database, local files or
/// blob locations), for <c>wintok tokenize</c> and <c>wintok evaluate</c>. Everything is checked before anything is
/// created, so a rejected run leaves nothing behind: the output, then the job's plan (checkpoint, inputs, weights);
/// only then are the output and the database created, the job submitted and watched to its end.
/// </summary>
internal static class LocalJob
{
    /// <summary>Where the results database of a job with a local OUTPUT goes, inside OUTPUT (not part of its data).</summary>
    public const string StateFolder = "_wintok";

    /// <summary>OUTPUT/_wintok/results.db beside a local output, so the job's record travels with it; else the home folder.</summary>
    public static string DefaultDatabase(string output) => FileStores.IsBlobLocation(output)
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), ".wintok", "results.db")
        : Path.Combine(output, StateFolder, "results.db");

    public static async Task<int> RunAsync<TSpec>(
        string output,
        string? database,
        Dictionary<string, string?> settings,
        bool verbose,
        Func<IServiceProvider, CancellationToken, Task<PlannedJob<TSpec>>> plan,
        Func<IServiceProvider, PlannedJob<TSpec>, CancellationToken, Task<SubmittedJob>> submit,
        Func<PlannedJob<TSpec>, SubmittedJob, string> describe,
        CancellationToken cancellationToken,
        Func<IServiceProvider, Guid, Func<CancellationToken, Task<string?>>>? detail = null,
        Func<IServiceProvider, Guid, CancellationToken, Task>? afterward = null)
    {
        database = Path.GetFullPath(database ?? DefaultDatabase(output));
        settings["JobQueue:Transport"] = "InProcess";
        settings["ResultsDatabase:Provider"] = "Sqlite";
        settings["ResultsDatabase:ConnectionString"] = $"Data Source={database}";

        var builder = WinTokHost.CreateBuilder(verbose ? Verbosity.Normal : Verbosity.Quiet, settings);
        builder.AddWinTokWorker(healthFile: false);
        builder.AddEmbeddedJobRunner();
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } settingsProblem) return ExitCodes.Usage(settingsProblem);

        var blobService = host.Services.GetService<BlobServiceClient>();
        if (await OutputLocation.ProblemAsync(output, blobService, cancellationToken) is { } outputProblem)
            return ExitCodes.Usage(outputProblem);
        PlannedJob<TSpec> planned;
        await using (var scope = host.Services.CreateAsyncScope())
        {
            planned = await plan(scope.ServiceProvider, cancellationToken);
        }

        await OutputLocation.EnsureExistsAsync(output, blobService, cancellationToken);
        Directory.CreateDirectory(Path.GetDirectoryName(database)!);
        LocalDatabases.Remember(database);
        Guid? submitted = null;
        var exitCode = await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            SubmittedJob job;
            await using (var scope = services.CreateAsyncScope())
            {
                job = await submit(scope.ServiceProvider, planned, token);
            }
            submitted = job.JobId;
            Console.WriteLine(describe(planned, job));
            var progress = await services.GetRequiredService<EmbeddedJobRunner>()
                .WaitAsync(job.JobId, ProgressDisplay.Create(CliConsole.Create(), Console.Out), token, detail?.Invoke(services, job.JobId));
            if (afterward is not null) await afterward(services, job.JobId, token);
            return progress.Status == JobStatus.Succeeded ? ExitCodes.Success : ExitCodes.Failed;
        }, cancellationToken);

        // After the host has stopped: the handler that finished the job has written its final output by then, and a
        // partition that was running when the job was cancelled has committed or been given back.
        if (submitted is { } jobId)
            await EmbeddedJobRunner.WriteSummaryAsync(host.Services, jobId, database, Console.Out);
        return exitCode;
    }
}
