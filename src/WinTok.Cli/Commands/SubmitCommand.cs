using System.CommandLine;
using Azure.Storage.Blobs;
using Microsoft.Extensions.DependencyInjection;
using WinTok.Cli.Hosting;
using WinTok.Jobs;
using WinTok.Jobs.Tokenize;
using WinTok.Messaging;
using WinTok.Results;
using WinTok.Worker.Hosting;

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
        command.SetAction((parse, cancellationToken) => RunAsync(arguments, parse, cancellationToken));
        return command;
    }

    private static async Task<int> RunAsync(TokenizeArguments arguments, ParseResult parse, CancellationToken cancellationToken)
    {
        var request = arguments.ToRequest(parse);
        if (TokenizeArguments.Problem(request, Environment.GetEnvironmentVariable("WINTOK_BLOB_CONNECTION")) is { } problem)
            return ExitCodes.Usage(problem);
        // --device and --batch-size belong to the workers; here they are only checked.
        var builder = WinTokHost.CreateBuilder(parse.GetValue(arguments.Verbose) ? Verbosity.Normal : Verbosity.Quiet, arguments.Model.Settings(parse));
        builder.AddResultsStore();
        builder.AddJobQueue();
        builder.AddJobControl();
        builder.AddCheckpointInspector();
        using var host = builder.Build();
        if (await WinTokHost.SettingsProblemAsync(host, cancellationToken) is { } settingsProblem) return ExitCodes.Usage(settingsProblem);

        var blobService = host.Services.GetService<BlobServiceClient>();
        if (await OutputLocation.ProblemAsync(request.Output, blobService, cancellationToken) is { } outputProblem)
            return ExitCodes.Usage(outputProblem);
        PlannedJob<TokenizeJobSpec> plan;
        await using (var scope = host.Services.CreateAsyncScope())
        {
            plan = await scope.ServiceProvider.GetRequiredService<TokenizeJobSubmitter>().PlanAsync(request, cancellationToken);
        }
        return await WinTokHost.RunJobAsync(host, async (services, token) =>
        {
            await OutputLocation.EnsureExistsAsync(request.Output, blobService, token);
            await using var scope = services.CreateAsyncScope();
            var job = await scope.ServiceProvider.GetRequiredService<TokenizeJobSubmitter>().SubmitAsync(plan, token);
            Console.WriteLine(job.JobId);
            Console.WriteLine($"Submitted {job.Partitions} partitions of {request.Input} ({plan.Spec.Kind}) -> {request.Output}.");
            Console.WriteLine($"Follow it with: wintok jobs show {job.JobId} --follow");
            return ExitCodes.Success;
        }, cancellationToken);
    }
}
