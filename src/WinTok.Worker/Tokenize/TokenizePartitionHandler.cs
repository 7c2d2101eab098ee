using System.Diagnostics;
using System.Text.Json;
using Azure.Storage.Blobs;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Polly;
using Polly.Retry;
using WinTok.Checkpoints;
using WinTok.Contracts;
using WinTok.Data.Corpus;
using WinTok.Data.Images;
using WinTok.Data.Shards;
using WinTok.Worker.Messaging;
using WinTok.Worker.Resilience;
using WinTok.Worker.Results;

namespace WinTok.Worker.Tokenize;

/// <summary>
/// Tokenizes one partition of a job: claim it, read and tokenize its images, commit the shard and its receipt, record
/// the commit in one transaction, and let whoever commits the last partition write the manifest. Every step is
/// idempotent, so a redelivered message (at-least-once) never duplicates or loses a row.
/// </summary>
internal sealed class TokenizePartitionHandler(
    ResultsRepository results,
    TokenizerEngine engine,
    PartitionTokenizer tokenizer,
    TokenizeProgress progress,
    IOptions<TokenizeOptions> tokenizeOptions,
    IOptions<JobQueueOptions> queueOptions,
    TimeProvider timeProvider,
    ILogger<TokenizePartitionHandler> logger,
    BlobServiceClient? blobService = null) : IMessageHandler<TokenizePartition>
{
    private static readonly TimeSpan CancellationPoll = TimeSpan.FromSeconds(5);

    // A storage outage in the middle of a partition restarts the partition here, with backoff, instead of burning the
    // message's delivery limit in seconds. A create-only conflict is not transient: two attempts disagree.
    private ResiliencePipeline PartitionRetry(Guid jobId, int partition) => new ResiliencePipelineBuilder { TimeProvider = timeProvider }
        .AddRetry(new RetryStrategyOptions
        {
            ShouldHandle = new PredicateBuilder().Handle<Exception>(e =>
                e is not (CommitConflictException or FileNotFoundException or DirectoryNotFoundException) && TransientFailures.IsTransientBlob(e)),
            MaxRetryAttempts = 6,
            BackoffType = DelayBackoffType.Exponential,
            UseJitter = true,
            Delay = TimeSpan.FromSeconds(2),
            MaxDelay = TimeSpan.FromSeconds(30),
            OnRetry = args =>
            {
                Log.RetryingPartition(logger, args.Outcome.Exception, jobId, partition, args.AttemptNumber + 1,
                    (long)args.RetryDelay.TotalMilliseconds);
                return ValueTask.CompletedTask;
            },
        })
        .Build();

    public async Task<HandlerOutcome> HandleAsync(TokenizePartition message, MessageContext context, CancellationToken cancellationToken)
    {
        var options = tokenizeOptions.Value;
        var job = await results.GetJobAsync(message.JobId, cancellationToken);
        if (job is null) return HandlerOutcome.Poison($"job {message.JobId} does not exist");
        if (job.Kind != TokenizeJobSpec.JobKind) return HandlerOutcome.Poison($"job {message.JobId} is a {job.Kind} job, not {TokenizeJobSpec.JobKind}");

        TokenizeJobSpec spec;
        CorpusPartition partition;
        try
        {
            spec = TokenizeJobSpec.FromJson(job.SpecJson);
            partition = CorpusPartition.FromJson(message.PartitionSpecJson);
        }
        catch (JsonException e)
        {
            return await FailAsync(message, $"malformed job or partition spec: {e.Message}", cancellationToken);
        }
        if (partition.Index != message.Partition)
            return await FailAsync(message, $"the message names partition {message.Partition} but carries the spec of partition {partition.Index}", cancellationToken);

        var claim = await ClaimAsync(message, options, cancellationToken);
        switch (claim.Outcome)
        {
            case ClaimOutcome.AlreadyCommitted:
                await FinishJobIfLastAsync(message.JobId, spec, job.PartitionCount, cancellationToken);
                return HandlerOutcome.Done;
            case ClaimOutcome.JobNotActive or ClaimOutcome.Failed:
                return HandlerOutcome.Done; // cancelled, or given up on: `jobs retry` republishes what it reopens
            case ClaimOutcome.NotFound:
                return HandlerOutcome.Poison($"job {message.JobId} has no partition {message.Partition}");
            case ClaimOutcome.LeasedByAnother:
                return HandlerOutcome.RetryLater($"partition {message.Partition} is still leased by {claim.Worker}");
        }

        await using var lease = PartitionLease.Hold(results, message.JobId, message.Partition, options.WorkerName, options.Lease,
            timeProvider, logger, cancellationToken);
        using var jobCancelled = CancellationTokenSource.CreateLinkedTokenSource(lease.Token);
        var watching = WatchForCancellationAsync(message.JobId, jobCancelled, jobCancelled.Token);
        try
        {
            var clock = Stopwatch.StartNew();
            var shard = await PartitionRetry(message.JobId, message.Partition).ExecuteAsync(
                token => new ValueTask<ShardInfo>(TokenizeAsync(message, spec, partition, options, token)), jobCancelled.Token);
            var commit = new PartitionCommit(message.JobId, message.Partition, options.WorkerName, shard.Path, shard.Rows, shard.Bytes,
                shard.Sha256, clock.ElapsedMilliseconds);
            var failures = await ReadFailuresAsync(spec, shard, cancellationToken);
            lease.StopRenewing();
            await results.CommitPartitionAsync(commit, failures, cancellationToken);
            await FinishJobIfLastAsync(message.JobId, spec, job.PartitionCount, cancellationToken);
            return HandlerOutcome.Done;
        }
        catch (OperationCanceledException) when (!cancellationToken.IsCancellationRequested && !lease.IsLost)
        {
            Log.AbandonedCancelledPartition(logger, message.JobId, message.Partition);
            return HandlerOutcome.Done; // the job was cancelled: keep what is committed, stop here
        }
        catch (OperationCanceledException) when (lease.IsLost && !cancellationToken.IsCancellationRequested)
        {
            return HandlerOutcome.RetryLater($"lost the lease of partition {message.Partition}");
        }
        catch (Exception e) when (IsPermanent(e) || IsLastDelivery(context))
        {
            return await FailAsync(message, $"{e.GetType().Name}: {e.Message}", cancellationToken);
        }
        catch (Exception) when (!cancellationToken.IsCancellationRequested)
        {
            // The message goes back to the queue: give the partition back so its redelivery need not wait out our lease.
            // If even that fails (the database is what broke), the lease simply expires.
            try
            {
                await results.ReleasePartitionAsync(message.JobId, message.Partition, options.WorkerName, CancellationToken.None);
            }
            catch (Exception release) when (TransientFailures.IsTransientDatabase(release) || release is TimeoutException)
            {
                Log.CouldNotReleasePartition(logger, release, message.JobId, message.Partition);
            }
            throw;
        }
        finally
        {
            await jobCancelled.CancelAsync();
            await watching;
        }
    }

    private async Task<ShardInfo> TokenizeAsync(TokenizePartition message, TokenizeJobSpec spec, CorpusPartition partition,
        TokenizeOptions options, CancellationToken cancellationToken)
    {
        var checkpoint = await CheckpointFiles.ResolveAsync(spec.Checkpoint, blobService, options.CheckpointCache, cancellationToken);
        var model = await engine.LoadAsync(checkpoint, spec.Encoder, cancellationToken);
        if (model.Sha256 != spec.CheckpointSha256)
            throw new CheckpointChangedException(spec.Checkpoint, spec.CheckpointSha256, model.Sha256);

        var preprocessor = Preprocessor(spec);
        var metadata = Metadata(message.JobId, spec, model, preprocessor);
        var output = FileStores.Open(spec.Output, blobService);
        var writer = new ShardWriter(output, message.Partition, metadata);
        var work = new PartitionWork(partition, FileStores.Open(spec.Input, blobService), preprocessor, checkpoint, spec.Encoder,
            spec.SemanticTokens, engine.BatchSize, options.DecodeThreads > 0 ? options.DecodeThreads : Math.Max(1, Environment.ProcessorCount - 1));

        Log.TokenizingPartition(logger, message.JobId, message.Partition, model.Device, engine.BatchSize);
        await tokenizer.RunAsync(work, writer, progress.AddImages, cancellationToken);
        var shard = await writer.CommitAsync(cancellationToken);
        await DatasetFinalizer.WriteReceiptAsync(output, shard, cancellationToken);
        Log.TokenizedPartition(logger, message.JobId, message.Partition, shard.Rows, shard.Failures, shard.Outcome.ToString());
        return shard;
    }

    /// <summary>The failure records of a committed shard, for the results database (the errors file is the full record).</summary>
    private async Task<IReadOnlyCollection<ItemFailure>> ReadFailuresAsync(TokenizeJobSpec spec, ShardInfo shard, CancellationToken cancellationToken)
    {
        if (shard.Failures == 0) return [];
        var output = FileStores.Open(spec.Output, blobService);
        var failures = await FailureFile.ReadAsync(output, shard.ErrorsPath, cancellationToken);
        return failures.Select(f => new ItemFailure(f.Key, f.Source, f.Reason)).ToList();
    }

    /// <summary>
    /// Once every partition is committed: writes the manifest, then marks the job succeeded. In that order, so a job
    /// that reads succeeded always has its manifest, and a worker that dies (or a storage outage that strikes) before
    /// the manifest is written leaves the job running for the redelivered message to finish. Workers that finish at
    /// once both write it: the manifest is create-only and identical, so the second write is a no-op.
    /// </summary>
    private async Task FinishJobIfLastAsync(Guid jobId, TokenizeJobSpec spec, int partitions, CancellationToken cancellationToken)
    {
        var progress = await results.GetJobProgressAsync(jobId, cancellationToken);
        if (progress is null || progress.Status is not (JobStatus.Queued or JobStatus.Running) || progress.Committed < partitions) return;
        var checkpoint = await CheckpointFiles.ResolveAsync(spec.Checkpoint, blobService, tokenizeOptions.Value.CheckpointCache, cancellationToken);
        var model = await engine.LoadAsync(checkpoint, spec.Encoder, cancellationToken);
        var preprocessor = Preprocessor(spec);
        var output = FileStores.Open(spec.Output, blobService);
        var manifest = await PartitionRetry(jobId, -1).ExecuteAsync(async token => await DatasetFinalizer.WriteManifestAsync(
            output, Metadata(jobId, spec, model, preprocessor), partitions, token), cancellationToken);
        Log.WroteManifest(logger, jobId, manifest.Totals.Shards, manifest.Totals.Rows, manifest.Totals.Failures);
        await results.TryCompleteJobAsync(jobId, cancellationToken);
    }

    /// <summary>Waits out another worker's lease (it may have died: its lease then expires) and claims the partition.</summary>
    private async Task<PartitionClaim> ClaimAsync(TokenizePartition message, TokenizeOptions options, CancellationToken cancellationToken)
    {
        var deadline = timeProvider.GetUtcNow() + options.Lease * 2;
        while (true)
        {
            var claim = await results.TryClaimPartitionAsync(message.JobId, message.Partition, options.WorkerName, options.Lease, cancellationToken);
            if (claim.Outcome != ClaimOutcome.LeasedByAnother || timeProvider.GetUtcNow() > deadline) return claim;
            var wait = (claim.LeaseExpiresAt ?? timeProvider.GetUtcNow()) - timeProvider.GetUtcNow() + TimeSpan.FromSeconds(1);
            await Task.Delay(wait < TimeSpan.FromSeconds(1) ? TimeSpan.FromSeconds(1) : wait > options.Lease ? options.Lease : wait,
                timeProvider, cancellationToken);
        }
    }

    private async Task WatchForCancellationAsync(Guid jobId, CancellationTokenSource cancel, CancellationToken stop)
    {
        try
        {
            while (!stop.IsCancellationRequested)
            {
                await Task.Delay(CancellationPoll, timeProvider, stop);
                var job = await results.GetJobAsync(jobId, stop);
                if (job?.Status == JobStatus.Cancelled)
                {
                    await cancel.CancelAsync();
                    return;
                }
            }
        }
        catch (OperationCanceledException)
        {
            // the partition finished or stopped first
        }
        catch (Exception e) when (TransientFailures.IsTransientDatabase(e))
        {
            // the lease renewal notices a lasting database outage; the watcher only serves cancellation
        }
    }

    private async Task<HandlerOutcome> FailAsync(TokenizePartition message, string reason, CancellationToken cancellationToken)
    {
        await results.MarkPartitionFailedAsync(message.JobId, message.Partition, tokenizeOptions.Value.WorkerName, reason, cancellationToken);
        return HandlerOutcome.Poison(reason);
    }

    private bool IsLastDelivery(MessageContext context) => context.DeliveryCount + 1 >= queueOptions.Value.DeliveryLimit;

    /// <summary>Failures no retry can fix: a bad or changed checkpoint, outputs that contradict an earlier attempt.</summary>
    private static bool IsPermanent(Exception e) => e is CheckpointFormatException or CheckpointMismatchException
        or CheckpointChangedException or CommitConflictException or FileNotFoundException or ArgumentException;

    private static ImagePreprocessor Preprocessor(TokenizeJobSpec spec) => new(new PreprocessOptions
    {
        ImageSize = spec.ImageSize,
        MaxPixels = spec.MaxPixels,
        ReducedScaleJpegDecode = spec.ReducedScaleJpegDecode,
    });

    private static ShardMetadata Metadata(Guid jobId, TokenizeJobSpec spec, ServedModel model, ImagePreprocessor preprocessor)
    {
        var config = model.Config;
        var layout = new TokenLayout(config.NumCodebooks, config.CodebookSize, config.PixelTokens,
            $"{config.Encoder.GridSize}x{config.Encoder.GridSize}",
            spec.SemanticTokens ? config.NumLatentTokens : 0, spec.SemanticTokens ? config.Encoder.HiddenSize : 0);
        return new ShardMetadata(jobId.ToString(), spec.Checkpoint, model.Sha256, model.ArgsJson, preprocessor.Description, layout, spec.CreatedUtc);
    }
}

/// <summary>The checkpoint file is not the one the job was submitted with.</summary>
internal sealed class CheckpointChangedException(string checkpoint, string expected, string actual)
    : Exception($"{checkpoint} has sha256 {actual}, but the job was submitted with {expected}; resubmit to use the new checkpoint");
