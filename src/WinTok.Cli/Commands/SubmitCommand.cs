using System.CommandLine;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Worker.Extensions;
using WinTok.Worker.Tokenize;

namespace WinTok.Cli.Commands;

/// <summary>
/// `wintok submit tokenize INPUT OUTPUT --checkpoint CKPT`: records the job in the results database (PostgreSQL from
/// WINTOK_POSTGRES), plans its partitions and publishes one message each to RabbitMQ (WINTOK_RABBITMQ) for the
/// `wintok worker`s. The job id is the first line of stdout, alone, for scripts.
/// </summary>
internal static class SubmitCommand
{
    public static Command Create() => new("submit", "Submit a job to the workers (results in PostgreSQL, partitions on RabbitMQ).")
    {
        CreateTokenize(),
    };

    private static Command CreateTokenize()
    {
        var arguments = new TokenizeArguments();
        var command = new Command("tokenize", "Submit a tokenize job: record it, plan its partitions, publish them.");
        arguments.AddTo(command);
        command.SetAction((parse, cancellationToken) => RunAsync(arguments.ToRequest(parse), arguments.ModelSettings(parse),
            parse.GetValue(arguments.Verbose), cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(TokenizeRequest request, Dictionary<string, string?> settings, bool verbose, CancellationToken cancellationToken)
    {
        if (TokenizeArguments.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
            return ExitCodes.Usage(problem);
        // --device and --batch-size belong to the workers; they only check here that they are valid.
        var builder = WinTokHost.CreateBuilder(verbose ? Verbosity.Normal : Verbosity.Quiet, settings);
        builder.AddResultsStore();
        builder.AddTokenizeJobs(queue: null);
        builder.AddJobQueue();
        using var host = builder.Build();
        return await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            var blobService = services.GetService<BlobServiceClient>();
            if (await OutputLocation.ProblemAsync(request.Output, blobService, ignoredFolder: null, token) is { } outputProblem)
                return ExitCodes.Usage(outputProblem);
            await OutputLocation.EnsureExistsAsync(request.Output, blobService, token);
            await using var scope = services.CreateAsyncScope();
            SubmittedJob job;
            try
            {
                job = await scope.ServiceProvider.GetRequiredService<TokenizeJobSubmitter>().SubmitAsync(request, token);
            }
            catch (Exception exception) when (TokenizeCommand.IsBadRequest(exception))
            {
                return ExitCodes.Usage(exception.Message);
            }
            Console.WriteLine(job.JobId);
            Console.WriteLine($"Submitted {job.Partitions} partitions of {request.Input} ({job.Kind}) -> {request.Output}.");
            Console.WriteLine($"Follow it with: wintok jobs show {job.JobId} --follow");
            return ExitCodes.Success;
        }, cancellationToken);
    }
}
