using System.Security.Cryptography;
using System.Text;
using TorchSharp;
using WinTok.Checkpoints.Pickle;

namespace WinTok.Checkpoints;

/// <summary>
/// Writes what <c>torch.save(obj, f)</c> writes (torch/serialization.py <c>_save</c>, PyTorch 2.x): the records
/// <c>archive/data.pkl</c> (the object tree, pickle protocol 2, storages as persistent ids),
/// <c>archive/.format_version</c>, <c>archive/.storage_alignment</c>, <c>archive/byteorder</c>, one
/// <c>archive/data/&lt;key&gt;</c> of raw little-endian bytes per storage, then <c>archive/version</c> and
/// <c>archive/.data/serialization_id</c> as the C++ writer closes the file.
/// </summary>
/// <remarks>
/// Storages are written one at a time from contiguous CPU copies, so a GPU model costs one tensor of host memory at a
/// time. The file is written beside the target, flushed to disk and then renamed over it: a crash never leaves a
/// half-written checkpoint under the target's name.
/// </remarks>
internal static class PthWriter
{
    private const string ArchiveName = "archive";

    public static void Write(string path, IReadOnlyDictionary<string, object?> checkpoint, long zip64Threshold = uint.MaxValue)
    {
        var encoder = new TorchValueEncoder();
        object? tree = encoder.Encode(checkpoint, "checkpoint");
        byte[] pickle = TorchPickler.Pickle(tree);

        string temporary = path + ".tmp";
        try
        {
            using (var stream = new FileStream(temporary, FileMode.Create, FileAccess.ReadWrite, FileShare.None, bufferSize: 1 << 20))
            {
                var zip = new TorchZipWriter(stream, ArchiveName, zip64Threshold);
                zip.WriteRecord("data.pkl", pickle);
                zip.WriteRecord(".format_version", "1"u8.ToArray());
                zip.WriteRecord(".storage_alignment", "64"u8.ToArray());
                zip.WriteRecord("byteorder", "little"u8.ToArray());
                foreach (var storage in encoder.Storages)
                {
                    WriteStorage(zip, storage);
                }
                // PyTorchStreamWriter's end of file: the format version of a plain torch.save, and a random id.
                zip.WriteRecord("version", "3\n"u8.ToArray());
                zip.WriteRecord(".data/serialization_id", Encoding.ASCII.GetBytes(SerializationId()));
                zip.Finish();
                stream.Flush(flushToDisk: true);
            }
            File.Move(temporary, path, overwrite: true);
        }
        catch
        {
            if (File.Exists(temporary))
            {
                File.Delete(temporary);
            }
            throw;
        }
    }

    private static void WriteStorage(TorchZipWriter zip, StorageSlot storage)
    {
        using var scope = torch.NewDisposeScope();
        var bytes = storage.Source.detach().cpu().contiguous();
        zip.WriteRecord($"data/{storage.Key}", bytes.numel() * bytes.element_size(), stream => TensorBytes.Write(bytes, stream));
    }

    // torch writes 40 decimal digits (two zero-padded 64-bit numbers); readers only compare it between files.
    private static string SerializationId() =>
        string.Concat(Enumerable.Range(0, 40).Select(_ => (char)('0' + RandomNumberGenerator.GetInt32(10))));
}
