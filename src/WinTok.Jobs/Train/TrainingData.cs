using Azure.Storage.Blobs;
using WinTok.Data.Corpus;
using WinTok.Jobs.Tokenize;

namespace WinTok.Jobs.Train;

/// <summary>
/// A run's corpus as partitions: planned once, at the run's first start, and kept in its output folder
/// (<see cref="RunFiles.DataPlan"/>, one partition per line) so that every resume reads the very same partitions, whatever
/// has been added to the corpus since.
/// </summary>
public static class TrainingData
{
    /// <summary>Every location's partitions (kind detected as tokenize does), in the order of the locations.</summary>
    public static async Task<IReadOnlyList<CorpusPartition>> PlanAsync(IReadOnlyList<string> locations, int filesPerPartition,
        BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        var plan = new List<CorpusPartition>();
        foreach (var location in locations)
        {
            var store = FileStores.Open(location, blobService);
            var kind = await TokenizeJobSubmitter.DetectKindAsync(store, cancellationToken);
            plan.AddRange(await CorpusPlanner.PlanAsync(store, kind, filesPerPartition, cancellationToken));
        }
        return plan;
    }

    /// <summary>The run's plan: read from <paramref name="output"/>, or planned and written there (atomically) when absent.</summary>
    public static async Task<IReadOnlyList<CorpusPartition>> LoadOrPlanAsync(string output, IReadOnlyList<string> locations, int filesPerPartition,
        BlobServiceClient? blobService, CancellationToken cancellationToken)
    {
        var path = Path.Combine(output, RunFiles.DataPlan);
        if (File.Exists(path))
            return (await File.ReadAllLinesAsync(path, cancellationToken)).Where(line => line.Length > 0).Select(CorpusPartition.FromJson).ToList();
        var plan = await PlanAsync(locations, filesPerPartition, blobService, cancellationToken);
        if (plan.Count == 0) throw new InvalidDataException($"The training data ({string.Join(", ", locations)}) holds no images");
        var temporary = path + ".tmp";
        await File.WriteAllLinesAsync(temporary, plan.Select(p => p.ToJson()), cancellationToken);
        File.Move(temporary, path, overwrite: true);
        return plan;
    }
}
