using System.CommandLine;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using Spectre.Console;
using WinTok.Checkpoints;
using WinTok.Cli.Hosting;
using WinTok.Cli.Jobs;
using WinTok.Data.Corpus;
using WinTok.Worker.Extensions;
using WinTok.Worker.Results;
using WinTok.Worker.Tokenize;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok tokenize INPUT OUTPUT --checkpoint CKPT`: the whole job in this process on embedded defaults (in-process
/// queue, SQLite results database, local files or blob locations). Exit code 0 when the job succeeded (images that
/// could not be read do not fail it), 1 when it failed or was cancelled, 2 on bad arguments.
/// </summary>
internal static class TokenizeCommand
{
    /// <summary>Where the results database of a job with a local OUTPUT goes, inside OUTPUT (not part of the dataset).</summary>
    public const string StateFolder = ".wintok";

    public static Command Create()
    {
        var arguments = new TokenizeArguments();
        var database = new Option<string?>("--db")
        {
            Description = $"SQLite results database (default: OUTPUT/{StateFolder}/results.db for a local OUTPUT, else ~/{StateFolder}/results.db).",
        };
        var command = new Command("tokenize", "Tokenize an image corpus into token shards, in this process.");
        arguments.AddTo(command);
        command.Options.Add(database);
        command.SetAction((parse, cancellationToken) => RunAsync(
            arguments.ToRequest(parse), parse.GetValue(database), arguments.ModelSettings(parse), parse.GetValue(arguments.Verbose), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(TokenizeRequest request, string? database, Dictionary<string, string?> settings, bool verbose,
        CancellationToken cancellationToken)
    {
        if (TokenizeArguments.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
            return ExitCodes.Usage(problem);

        database = Path.GetFullPath(database ?? DefaultDatabase(request.Output));
        Directory.CreateDirectory(Path.GetDirectoryName(database)!);
        settings["JobQueue:Transport"] = "InProcess";
        settings["ResultsDatabase:Provider"] = "Sqlite";
        settings["ResultsDatabase:ConnectionString"] = $"Data Source={database}";

        var builder = WinTokHost.CreateBuilder(verbose ? Verbosity.Normal : Verbosity.Quiet, settings);
        builder.AddResultsStore();
        builder.AddTokenizeJobs(builder.AddJobQueue());
        builder.AddEmbeddedJobRunner();
        using var host = builder.Build();
        Guid? submitted = null;
        var exitCode = await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            var blobService = services.GetService<BlobServiceClient>();
            if (await OutputLocation.ProblemAsync(request.Output, blobService, StateFolder, token) is { } outputProblem)
                return ExitCodes.Usage(outputProblem);
            await OutputLocation.EnsureExistsAsync(request.Output, blobService, token);

            SubmittedJob job;
            await using (var scope = services.CreateAsyncScope())
            {
                try
                {
                    job = await scope.ServiceProvider.GetRequiredService<TokenizeJobSubmitter>().SubmitAsync(request, token);
                }
                catch (Exception exception) when (IsBadRequest(exception))
                {
                    return ExitCodes.Usage(exception.Message);
                }
            }
            submitted = job.JobId;
            Console.WriteLine($"Job {job.JobId}: {job.Partitions} partitions of {request.Input} ({job.Kind}) -> {request.Output}");
            var progress = await services.GetRequiredService<EmbeddedJobRunner>()
                .WaitAsync(job.JobId, ProgressDisplay.Create(CliConsole.Create(), Console.Out), token);
            return progress.Status == JobStatus.Succeeded ? ExitCodes.Success : ExitCodes.Failed;
        }, cancellationToken);

        // After the host has stopped: the handler that finished the job has written the manifest by then, and a partition
        // that was running when the job was cancelled has committed or let go.
        if (submitted is { } jobId)
            await EmbeddedJobRunner.WriteSummaryAsync(host.Services, jobId, database, Console.Out);
        return exitCode;
    }

    /// <summary>OUTPUT/.wintok/results.db beside a local dataset, so the job's record travels with it; else the home folder.</summary>
    internal static string DefaultDatabase(string output) => FileStores.IsBlobLocation(output)
        ? Path.Combine(Environment.GetFolderPath(Environment.SpecialFolder.UserProfile), StateFolder, "results.db")
        : Path.Combine(output, StateFolder, "results.db");

    /// <summary>What the submitter rejects before recording anything: a bad checkpoint or preset, an empty corpus.</summary>
    internal static bool IsBadRequest(Exception exception) =>
        exception is CheckpointFormatException or ArgumentException or FileNotFoundException or DirectoryNotFoundException
        // TokenizeJobSubmitter's "holds no images to tokenize"; it has no exception type of its own.
        || (exception is InvalidOperationException && exception.Message.EndsWith("holds no images to tokenize", StringComparison.Ordinal));
}
