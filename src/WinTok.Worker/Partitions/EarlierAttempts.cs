using WinTok.Data.Corpus;

namespace WinTok.Worker.Partitions;

/// <summary>
/// What a retried partition does with files an earlier attempt committed before it died. A retry recomputes from the
/// same inputs, but on a GPU the last bits of a float can differ between processes (cuDNN chooses kernels per run), so
/// its bytes may not equal the earlier file's. Both are valid measurements of the same images: the committed file
/// stands, and the retry goes on with it instead of failing on the conflict.
/// </summary>
internal static class EarlierAttempts
{
    /// <summary>Runs <paramref name="commit"/>; on a conflict returns the file already there and calls <paramref name="kept"/> with its path.</summary>
    public static async Task<CommittedFile> CommitOrKeepAsync(IFileStore output, Func<Task<CommittedFile>> commit, Action<string> kept,
        CancellationToken cancellationToken)
    {
        try
        {
            return await commit();
        }
        catch (CommitConflictException conflict)
        {
            kept(conflict.Path);
            var existing = await output.GetInfoAsync(conflict.Path, cancellationToken)
                ?? throw new InvalidOperationException($"{conflict.Path} was reported committed but cannot be found", conflict);
            return new CommittedFile(conflict.Path, existing.Length, conflict.ExistingSha256, CommitOutcome.AlreadyCommitted);
        }
    }
}
